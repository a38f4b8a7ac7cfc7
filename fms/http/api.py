"""The routes of the HTTP listener, their token checks and their JSON error documents.

:meth:`API.handle` takes what a request is (method, raw path, query, headers) and gives a
:class:`Response`; the Twisted side (:mod:`fms.http.web`) only reads requests and writes
responses. Routes (``{app}`` and ``{name}`` are one path segment each, percent-encoded, so a
slash inside one is ``%2F``):

- ``GET /`` the dashboard page (``fms/http/dashboard.html``; 404 when not installed);
- ``GET /play/{app}/{name}`` the player page of a stream and ``GET /static/{file}`` the files
  it loads (:mod:`fms.http.pages`); these two need no token, like HTTP-FLV itself;
- ``GET /metrics`` Prometheus text (:mod:`fms.http.metrics`);
- ``GET /api/v1/server``, ``/api/v1/streams``, ``/api/v1/streams/{app}/{name}``,
  ``/api/v1/clients[?app=&stream=]``, ``/api/v1/clients/{id}``, ``/api/v1/apps``;
- ``DELETE /api/v1/streams/{app}/{name}`` stops that publish, ``DELETE /api/v1/clients/{id}``
  disconnects that client (both 200 with ``{"stopped"|"disconnected": ...}``);
- ``POST /api/v1/clients/{id}/reconnect`` and ``POST /api/v1/reconnect`` (every client) send
  Enhanced RTMP reconnect requests (:mod:`fms.http.reconnect`): 200 with ``{"asked": [ids],
  "unable": [ids]}`` (one client that cannot be asked: 409).

Tokens: actions (DELETE, POST) need ``Authorization: Bearer TOKEN`` (``[http] token``; none
configured: every action is 403); with ``read_token`` so do reads. No header: 401 (with
``WWW-Authenticate``), a header that is not a bearer token: 401, a wrong token: 403. Errors
are ``{"error": "..."}``.
"""

from __future__ import annotations

import hmac
import importlib.resources
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred, succeed

from fms import __version__
from fms.config import HTTPConfig
from fms.http import documents as docs
from fms.http import pages
from fms.http import reconnect as moves
from fms.http.peers import NoPeers, PeerError, Peers
from fms.http.viewers import HTTPClients
from fms.log import Logger
from fms.server import actions

if TYPE_CHECKING:
    from fms.server.factory import RTMPServerFactory

log = Logger(namespace="fms.http.api")

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"

# Control operations between workers (see fms.http.peers).
OP_STREAMS = "http.streams"
OP_CLIENTS = "http.clients"
OP_SERVER = "http.server"
OP_METRICS = "http.metrics"
OP_KICK = "http.kick"
OP_STOP = "http.stop"
OP_APPS = "http.apps"
OP_RECONNECT = "http.reconnect"


@dataclass(frozen=True, slots=True)
class Response:
    """What to answer: ``status``, ``body`` bytes, ``content_type`` and extra headers."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_response(
    status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, JSON, headers)


def error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """``{"error": message}`` with ``status``."""
    return json_response(status, {"error": message}, headers)


class RequestError(Exception):
    """A request we refuse: carries the response (status and message)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _dashboard() -> bytes | None:
    """The dashboard page's bytes, read once; None when the package has no page."""
    try:
        return importlib.resources.files("fms.http").joinpath("dashboard.html").read_bytes()
    except (FileNotFoundError, OSError):
        return None


POST = frozenset({"POST"})


@dataclass(frozen=True, slots=True)
class _Route:
    methods: dict[str, Callable[..., Deferred[Response]]]
    action: frozenset[str] = frozenset({"DELETE"})
    public: bool = False
    """Served without a token even with ``read_token`` (a page a browser opens by address)."""


class API:
    """Answers the requests of the HTTP listener from the server's state (see the module
    docstring). ``server`` is the RTMP factory of this process, ``peers`` the other workers,
    ``started`` the reactor time (seconds) the process started serving."""

    def __init__(
        self,
        server: RTMPServerFactory,
        config: HTTPConfig,
        *,
        peers: Peers | None = None,
        started: float | None = None,
    ) -> None:
        self.server = server
        self.config = config
        self.peers: Peers = peers if peers is not None else NoPeers()
        self.started = server.clock.seconds() if started is None else started
        self.dashboard = _dashboard()
        self.pages = pages.Pages()
        self.http_clients = HTTPClients()
        """This process's HTTP-FLV and WebSocket-FLV viewers, listed with the RTMP clients."""
        self.metrics_extra: Callable[[], dict[str, Any]] = lambda: {}
        """Figures of this process the metrics add (the worker restarts of a worker)."""
        for op, handler in (
            (OP_STREAMS, lambda p: {"streams": self.local_streams()}),
            (OP_CLIENTS, self._clients_here),
            (OP_APPS, lambda p: {"clients": docs.clients_per_app(self.server)}),
            (OP_SERVER, lambda p: self.local_server()),
            (OP_METRICS, lambda p: self.local_metrics()),
            (OP_KICK, self._kick_here),
            (OP_STOP, self._stop_here),
            (OP_RECONNECT, self._reconnect_here),
        ):
            self.peers.handle(op, handler)

    # ------------------------------------------------------------------------ local parts

    def now(self) -> float:
        return self.server.clock.seconds()

    def local_streams(self) -> list[dict[str, Any]]:
        return docs.local_streams(self.server, self.peers.index, self.now())

    def _clients_here(self, payload: dict[str, Any]) -> dict[str, Any]:
        app, stream, limit = payload.get("app"), payload.get("stream"), payload.get("limit")
        found, total = docs.local_clients(
            self.server, self.peers.index, self.now(), app, stream, limit
        )
        worker = self.peers.index
        viewers, more = self.http_clients.documents(
            lambda n: docs.client_id(worker, n), self.now(), app, stream, limit
        )
        if viewers:  # both oldest first: the oldest of the union are among these
            found = docs.merge_clients([found, viewers], limit)
        return {"clients": found, "total": total + more}

    def local_server(self) -> dict[str, Any]:
        viewers = self.http_clients
        return docs.local_server(
            self.server, self.started, self.now(), len(viewers), viewers.playing()
        )

    def local_metrics(self) -> dict[str, Any]:
        from fms.http.metrics import local_figures

        playing = self.http_clients.playing()
        return local_figures(self.server, self.now(), self.metrics_extra(), playing)

    def _kick_here(self, payload: dict[str, Any]) -> dict[str, Any]:
        proto = docs.find_client(self.server, int(payload["number"]))
        if proto is None:
            viewer = self.http_clients.find(int(payload["number"]))
            if viewer is None:
                return {"disconnected": False}
            viewer.disconnect("disconnected through the HTTP API")
            return {"disconnected": True}
        actions.disconnect(proto, "disconnected through the HTTP API")
        return {"disconnected": True}

    def _stop_here(self, payload: dict[str, Any]) -> dict[str, Any]:
        app, name = str(payload["app"]), str(payload["name"])
        proto = actions.publisher_of(self.server, app, name)
        if proto is None:
            pull = self.server.pulls.of(app, name)  # a pulled stream: stop its pull
            if pull is not None and pull.stream is not None:
                pull.close("stopped through the HTTP API")
                return {"stopped": True, "publisher": None}
            return {"stopped": False}
        actions.stop_publish(self.server, proto, app, name)
        return {"stopped": True, "publisher": docs.client_id(self.peers.index, proto.id)}

    def _reconnect_here(self, payload: dict[str, Any]) -> dict[str, Any]:
        return moves.reconnect_here(self.server, self.peers.index, payload)

    # ---------------------------------------------------------------------- everywhere

    def _gather(self, op: str, payload: dict[str, Any], here: Any) -> Deferred[list[Any]]:
        """Our own part first, then the other workers' replies."""
        return self.peers.ask_others(op, payload).addCallback(lambda replies: [here, *replies])

    def all_streams(self) -> Deferred[tuple[list[dict[str, Any]], int]]:
        def merge(parts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
            return docs.merge_streams([p["streams"] for p in parts]), len(parts)

        here = {"streams": self.local_streams()}
        return self._gather(OP_STREAMS, {}, here).addCallback(merge)

    def all_clients(
        self, app: str | None = None, stream: str | None = None, limit: int | None = None
    ) -> Deferred[tuple[list[dict[str, Any]], int, int]]:
        """(clients oldest first, at most ``limit``; workers that answered; clients that
        matched on those workers)."""

        def merge(parts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int, int]:
            clients = docs.merge_clients([p["clients"] for p in parts], limit)
            return clients, len(parts), sum(p["total"] for p in parts)

        payload = {"app": app, "stream": stream, "limit": limit}
        here = self._clients_here(payload)
        return self._gather(OP_CLIENTS, payload, here).addCallback(merge)

    def all_metrics(self) -> Deferred[list[dict[str, Any]]]:
        return self._gather(OP_METRICS, {}, self.local_metrics())

    # ---------------------------------------------------------------------------- routing

    def handle(
        self,
        method: str,
        path: bytes,
        query: Mapping[bytes, list[bytes]],
        headers: Mapping[str, str],
        body: bytes = b"",
    ) -> Deferred[Response]:
        """Answer one request; ``headers`` with lower-case names, ``body`` what it carried.
        Never fails: an internal error is a 500 document (and a log line)."""
        try:
            d = self._route(method, path, query, headers, body)
        except RequestError as exc:
            return succeed(exc.response)
        except Exception:
            log.failure("internal error answering {method} {path}", method=method, path=path)
            return succeed(error(500, "internal error (logged)"))

        def failed(failure: Any) -> Response:
            if failure.check(RequestError):
                return failure.value.response  # type: ignore[no-any-return]
            log.failure(
                "internal error answering {method} {path}", failure, method=method, path=path
            )
            return error(500, "internal error (logged)")

        return d.addErrback(failed)

    def _route(
        self,
        method: str,
        path: bytes,
        query: Mapping[bytes, list[bytes]],
        headers: Mapping[str, str],
        body: bytes = b"",
    ) -> Deferred[Response]:
        segments = _segments(path)
        route, args = self._match(segments)
        if route is None:
            raise RequestError(error(404, f"no such resource: {path.decode('latin-1')}"))
        if method == "HEAD" and "GET" in route.methods:
            method = "GET"
        handler = route.methods.get(method)
        if handler is None:
            allow = ", ".join(sorted(route.methods))
            raise RequestError(
                error(
                    405,
                    f"method {method} is not allowed here (allowed: {allow})",
                    (("Allow", allow),),
                )
            )
        if segments and not route.public and (method in route.action or self.config.read_token):
            self._authorize(headers, method in route.action)
        known = {"app", "stream", "limit"} if segments == ["api", "v1", "clients"] else set()
        params: dict[str, str] = {}
        for key, values in query.items():
            name = _text(key, "query parameter name")
            if name not in known:
                hint = f" (known: {', '.join(sorted(known))})" if known else ""
                raise RequestError(error(400, f"unknown query parameter {name!r}{hint}"))
            if len(values) != 1:
                raise RequestError(error(400, f"query parameter {name!r} given more than once"))
            params[name] = _text(values[0], f"query parameter {name!r}")
        if method == "POST":
            return handler(*args, body=body, **params)
        return handler(*args, **params)

    def _match(self, segments: list[str]) -> tuple[_Route | None, list[str]]:
        if segments == []:
            return _Route({"GET": self.get_dashboard}), []
        if segments == ["metrics"]:
            return _Route({"GET": self.get_metrics}), []
        if len(segments) == 3 and segments[0] == "play":
            return _Route({"GET": self.get_player}, public=True), segments[1:]
        if len(segments) == 2 and segments[0] == "static":
            return _Route({"GET": self.get_static}, public=True), segments[1:]
        if segments[:2] != ["api", "v1"]:
            return None, []
        rest = segments[2:]
        if rest == ["server"]:
            return _Route({"GET": self.get_server}), []
        if rest == ["streams"]:
            return _Route({"GET": self.get_streams}), []
        if rest == ["apps"]:
            return _Route({"GET": self.get_apps}), []
        if rest == ["clients"]:
            return _Route({"GET": self.get_clients}), []
        if rest == ["reconnect"]:
            return _Route({"POST": self.post_reconnect}, POST), []
        if len(rest) == 3 and rest[0] == "clients" and rest[1] and rest[2] == "reconnect":
            return _Route({"POST": self.post_client_reconnect}, POST), rest[1:2]
        if len(rest) == 3 and rest[0] == "streams" and rest[1] and rest[2]:
            return _Route({"GET": self.get_stream, "DELETE": self.delete_stream}), rest[1:]
        if len(rest) == 2 and rest[0] == "clients" and rest[1]:
            return _Route({"GET": self.get_client, "DELETE": self.delete_client}), rest[1:]
        return None, []

    def _authorize(self, headers: Mapping[str, str], action: bool) -> None:
        token = self.config.token
        what = "actions" if action else "reads"
        if not token:
            raise RequestError(
                error(403, f"{what} are disabled: no [http] token is configured on the server")
            )
        challenge = (("WWW-Authenticate", 'Bearer realm="fms"'),)
        header = headers.get("authorization")
        if header is None:
            raise RequestError(
                error(401, f"{what} need an 'Authorization: Bearer TOKEN' header", challenge)
            )
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise RequestError(
                error(401, "the Authorization header must be 'Bearer TOKEN'", challenge)
            )
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise RequestError(error(403, "wrong token"))

    # ---------------------------------------------------------------------------- reads

    def get_dashboard(self) -> Deferred[Response]:
        if self.dashboard is None:
            return succeed(error(404, "the dashboard page is not installed"))
        return succeed(Response(200, self.dashboard, HTML))

    def get_player(self, app: str, name: str) -> Deferred[Response]:
        """The same page for every stream: it reads ``app`` and ``name`` from its address."""
        page = self.pages.player()
        if page is None:
            return succeed(error(404, "the player page is not installed"))
        return succeed(Response(200, page, HTML))

    def get_static(self, name: str) -> Deferred[Response]:
        found = self.pages.static(name)
        if found is None:
            return succeed(error(404, f"no static file {name!r}"))
        body, content_type = found
        cache = (("Cache-Control", f"public, max-age={pages.STATIC_MAX_AGE}"),)
        return succeed(Response(200, body, content_type, cache))

    def get_metrics(self) -> Deferred[Response]:
        from fms.http.metrics import render

        return self.all_metrics().addCallback(
            lambda parts: Response(200, render(parts, self.peers.count), PROMETHEUS)
        )

    def get_server(self) -> Deferred[Response]:
        def answer(
            results: tuple[list[dict[str, Any]], tuple[list[dict[str, Any]], int]],
        ) -> Response:
            parts, (streams, _) = results
            published = sum(1 for doc in streams if doc["published"])
            doc = docs.merge_server(parts, __version__, self.peers.count, published)
            return json_response(200, doc)

        servers = self._gather(OP_SERVER, {}, self.local_server())
        both: Deferred[Any] = servers.addCallback(
            lambda parts: self.all_streams().addCallback(lambda streams: (parts, streams))
        )
        return both.addCallback(answer)

    def _with_workers(self, doc: dict[str, Any], answered: int) -> dict[str, Any]:
        doc["workers"] = {"total": self.peers.count, "answered": answered}
        return doc

    def get_streams(self) -> Deferred[Response]:
        return self.all_streams().addCallback(
            lambda r: json_response(200, self._with_workers({"streams": r[0]}, r[1]))
        )

    def get_stream(self, app: str, name: str) -> Deferred[Response]:
        def answer(result: tuple[list[dict[str, Any]], int]) -> Response:
            for doc in result[0]:
                if doc["app"] == app and doc["name"] == name:
                    return json_response(200, doc)
            return error(404, f"no stream {app}/{name}")

        return self.all_streams().addCallback(answer)

    def get_clients(
        self, app: str | None = None, stream: str | None = None, limit: str | None = None
    ) -> Deferred[Response]:
        count = None
        if limit is not None:
            if not limit.isdigit() or not 0 < int(limit) <= 1_000_000:
                raise RequestError(
                    error(400, f"limit must be a whole number from 1, not {limit!r}")
                )
            count = int(limit)
        return self.all_clients(app, stream, count).addCallback(
            lambda r: json_response(200, self._with_workers({"clients": r[0], "total": r[2]}, r[1]))
        )

    def get_client(self, ident: str) -> Deferred[Response]:
        def answer(result: tuple[list[dict[str, Any]], int, int]) -> Response:
            for doc in result[0]:
                if doc["id"] == ident:
                    return json_response(200, doc)
            return error(404, f"no client {ident}")

        self._client_number(ident)
        return self.all_clients().addCallback(answer)

    def get_apps(self) -> Deferred[Response]:
        def answer(results: tuple[Any, list[dict[str, Any]]]) -> Response:
            (streams, _), parts = results
            counts: dict[str, int] = {}
            for part in parts:
                for app, count in part["clients"].items():
                    counts[app] = counts.get(app, 0) + count
            doc = {"apps": docs.apps_document(streams, counts)}
            return json_response(200, self._with_workers(doc, len(parts)))

        here = {"clients": docs.clients_per_app(self.server)}
        d: Deferred[Any] = self.all_streams().addCallback(
            lambda streams: self._gather(OP_APPS, {}, here).addCallback(lambda p: (streams, p))
        )
        return d.addCallback(answer)

    # -------------------------------------------------------------------------- actions

    def _client_number(self, ident: str) -> tuple[int, int]:
        parsed = docs.parse_client_id(ident)
        if parsed is None:
            raise RequestError(
                error(400, f"malformed client id {ident!r} (expected WORKER-NUMBER, e.g. 0-12)")
            )
        return parsed

    def delete_client(self, ident: str) -> Deferred[Response]:
        worker, number = self._client_number(ident)

        def answer(reply: dict[str, Any]) -> Response:
            if not reply.get("disconnected"):
                return error(404, f"no client {ident}")
            log.info("client {id} disconnected through the HTTP API", id=ident)
            return json_response(200, {"disconnected": ident})

        payload = {"number": number}
        if worker == self.peers.index:
            return succeed(answer(self._kick_here(payload)))
        if not 0 <= worker < self.peers.count:
            return succeed(error(404, f"no client {ident} (there is no worker {worker})"))

        def unreachable(failure: Any) -> Response:
            failure.trap(PeerError)
            return error(503, f"worker {worker} did not answer: {failure.getErrorMessage()}")

        return self.peers.ask(worker, OP_KICK, payload).addCallbacks(answer, unreachable)

    def post_client_reconnect(self, ident: str, body: bytes = b"") -> Deferred[Response]:
        worker, number = self._client_number(ident)
        payload = {"number": number, "tcUrl": _reconnect_url(body)}

        def answer(reply: dict[str, Any]) -> Response:
            if not reply.get("found"):
                return error(404, f"no client {ident}")
            doc = {"asked": reply["asked"], "unable": reply["unable"]}
            if not reply["asked"]:
                doc["error"] = f"client {ident} did not announce the Reconnect capability"
                return json_response(409, doc)
            log.info("client {id} asked to reconnect through the HTTP API", id=ident)
            return json_response(200, doc)

        if worker == self.peers.index:
            return succeed(answer(self._reconnect_here(payload)))
        if not 0 <= worker < self.peers.count:
            return succeed(error(404, f"no client {ident} (there is no worker {worker})"))

        def unreachable(failure: Any) -> Response:
            failure.trap(PeerError)
            return error(503, f"worker {worker} did not answer: {failure.getErrorMessage()}")

        return self.peers.ask(worker, OP_RECONNECT, payload).addCallbacks(answer, unreachable)

    def post_reconnect(self, body: bytes = b"") -> Deferred[Response]:
        payload = {"number": None, "tcUrl": _reconnect_url(body)}

        def answer(parts: list[dict[str, Any]]) -> Response:
            asked = [ident for part in parts for ident in part["asked"]]
            unable = [ident for part in parts for ident in part["unable"]]
            log.info(
                "{asked} clients asked to reconnect through the HTTP API ({unable} cannot be)",
                asked=len(asked), unable=len(unable),
            )  # fmt: skip
            doc = {"asked": asked, "unable": unable}
            return json_response(200, self._with_workers(doc, len(parts)))

        here = self._reconnect_here(payload)
        return self._gather(OP_RECONNECT, payload, here).addCallback(answer)

    def delete_stream(self, app: str, name: str) -> Deferred[Response]:
        payload = {"app": app, "name": name}

        def answer(replies: list[dict[str, Any]]) -> Response:
            for reply in replies:
                if reply.get("stopped"):
                    return json_response(
                        200, {"stopped": f"{app}/{name}", "publisher": reply.get("publisher")}
                    )
            return error(404, f"nobody publishes {app}/{name}")

        here = self._stop_here(payload)
        if here["stopped"]:
            return succeed(answer([here]))
        return self.peers.ask_others(OP_STOP, payload).addCallback(answer)


def _reconnect_url(body: bytes) -> str | None:
    try:
        return moves.parse_body(body)
    except moves.BodyError as exc:
        raise RequestError(error(400, str(exc))) from None


def _segments(path: bytes) -> list[str]:
    """The path's segments, each percent-decoded as UTF-8 (400 otherwise); a trailing slash
    and empty segments are ignored."""
    if not path.startswith(b"/"):
        raise RequestError(error(400, "the request target must be a path starting with /"))
    return [_text(unquote_to_bytes(part), "path") for part in path.split(b"/") if part]


def _text(raw: bytes, what: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(error(400, f"the {what} is not UTF-8 once percent-decoded")) from None
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise RequestError(error(400, f"the {what} holds control characters"))
    return text
