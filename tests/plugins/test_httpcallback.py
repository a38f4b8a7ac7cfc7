"""The httpcallback plugin: the form it POSTs and the decision each answer stands for.

No sockets and no wall clock: a fake IAgent records the request and returns a canned response,
a ``Clock`` drives the timeouts. One test runs the real ``Agent`` against a real
``twisted.web`` site over in-memory transports (``iosim``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fms.plugins.httpcallback import MAX_BODY, HTTPCallback, stream_name_from_location
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.web.client import Agent, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IResponse
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from fms.apps.api import ACCEPT, Redirect, Reject, Rename
from fms.apps.application import Application
from fms.apps.interfaces import IApplication, IClientView
from fms.apps.loader import build
from fms.apps.verdict import Verdict
from fms.config import AppConfig, PluginSpec
from fms.errors import ConfigError
from fms.live.registry import StreamRegistry

URL = "http://auth.example:8080/auth?token=s3cret"


@implementer(IClientView)
@dataclass
class FakeClient:
    """An IClientView with the values an FFmpeg publisher would have."""

    id: int = 42
    peer: str = "203.0.113.7:50123"
    host: str = "203.0.113.7"
    app: str = "live"
    tc_url: str = "rtmp://media.example/live"
    params: dict[str, Any] = field(default_factory=lambda: {"app": "live", "type": "nonprivate"})
    query: dict[str, str] = field(default_factory=dict)
    agent: str = "FMLE/3.0 (compatible; Lavf61.7.100)"
    protocol: str = "rtmp"
    publishing: tuple[str, ...] = ()
    playing: tuple[str, ...] = ()
    application: Any = None

    def call(self, method: str, *args: Any) -> Any:
        raise NotImplementedError

    def send(self, method: str, *args: Any) -> None:
        raise NotImplementedError

    def disconnect(self, reason: str = "") -> None:
        raise NotImplementedError


@implementer(IResponse)
class FakeResponse:
    """A response whose body arrives in ``chunks`` (and then ends, if ``ends``)."""

    version = (b"HTTP", 1, 1)
    request = None
    previousResponse = None

    def __init__(
        self,
        code: int,
        phrase: bytes = b"",
        headers: dict[bytes, list[bytes]] | None = None,
        chunks: Iterable[bytes] = (),
        *,
        ends: bool = True,
    ) -> None:
        self.code = code
        self.phrase = phrase
        self.headers = Headers(headers or {})
        self.length = UNKNOWN_LENGTH
        self.chunks = list(chunks)
        self.ends = ends
        self.transport = StringTransport()
        self.delivered = 0

    def deliverBody(self, protocol: Protocol) -> None:
        protocol.makeConnection(self.transport)
        for chunk in self.chunks:
            if self.transport.producerState == "stopped":
                return
            self.delivered += len(chunk)
            protocol.dataReceived(chunk)
        if self.ends:
            protocol.connectionLost(Failure(ResponseDone()))

    def setPreviousResponse(self, response: IResponse) -> None:
        raise NotImplementedError


@dataclass
class SentRequest:
    method: bytes
    uri: bytes
    headers: Headers
    body: bytes

    @property
    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode("ascii"), keep_blank_values=True)


@implementer(IAgent)
class FakeAgent:
    """Records requests; answers with ``answer`` (a response or an error), or never (None)."""

    def __init__(self, answer: FakeResponse | Exception | None) -> None:
        self.answer = answer
        self.requests: list[SentRequest] = []
        self.cancelled = 0

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        consumer = StringTransport()
        if bodyProducer is not None:
            bodyProducer.startProducing(consumer)
            assert bodyProducer.length == len(consumer.value())
        self.requests.append(SentRequest(method, uri, headers or Headers(), consumer.value()))
        if isinstance(self.answer, Exception):
            return fail(self.answer)
        if self.answer is not None:
            return succeed(self.answer)

        def cancel(_: Deferred[IResponse]) -> None:
            self.cancelled += 1

        return Deferred(cancel)


def make(
    answer: FakeResponse | Exception | None, **options: Any
) -> tuple[HTTPCallback, FakeAgent, Clock]:
    agent, clock = FakeAgent(answer), Clock()
    if not any(k.startswith("on_") for k in options):
        options = {"on_connect": URL, "on_publish": URL, "on_play": URL, **options}
    return HTTPCallback(reactor=clock, agent=agent, **options), agent, clock


def result(d: Any) -> Any:
    """What ``d`` fired with (it must have fired)."""
    assert isinstance(d, Deferred), d
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    assert outcome, "the Deferred has not fired"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def publish(plugin: HTTPCallback, name: str = "cam", query: dict[str, str] | None = None) -> Any:
    return plugin.publish(FakeClient(), name, query or {}, "live")


def redirect(location: bytes) -> FakeResponse:
    return FakeResponse(302, b"Found", {b"Location": [location]})


# ----------------------------------------------------------------------------- the request


def test_the_fake_client_is_a_client_view() -> None:
    assert verifyObject(IClientView, FakeClient())


def test_publish_posts_the_nginx_rtmp_form_with_the_stream_query() -> None:
    plugin, agent, _ = make(FakeResponse(200))
    result(publish(plugin, "cam", {"key": "abc"}))
    assert agent.requests[0].form == [
        ("call", "publish"),
        ("addr", "203.0.113.7"),
        ("clientid", "42"),
        ("app", "live"),
        ("flashver", "FMLE/3.0 (compatible; Lavf61.7.100)"),
        ("tcurl", "rtmp://media.example/live"),
        ("name", "cam"),
        ("type", "live"),
        ("key", "abc"),
    ]


def test_the_request_is_a_form_post_to_the_configured_url() -> None:
    plugin, agent, _ = make(FakeResponse(200))
    result(publish(plugin))
    sent = agent.requests[0]
    assert (sent.method, sent.uri) == (b"POST", URL.encode())
    assert sent.headers.getRawHeaders(b"content-type") == [b"application/x-www-form-urlencoded"]
    assert sent.headers.getRawHeaders(b"user-agent", [b""])[0].startswith(b"pyFMS/")


def test_play_posts_call_play_with_name_and_query_but_no_type() -> None:
    plugin, agent, _ = make(FakeResponse(200))
    result(plugin.play(FakeClient(), "cam", {"token": "t"}))
    form = dict(agent.requests[0].form)
    assert (form["call"], form["name"], form["token"]) == ("play", "cam", "t")
    assert "type" not in form


def test_connect_posts_call_connect_with_the_tcurl_query_and_no_name() -> None:
    plugin, agent, _ = make(FakeResponse(200))
    client = FakeClient(
        query={"user": "ann"},
        params={"swfUrl": "http://site/player.swf", "pageUrl": "http://site/", "app": "live"},
    )
    result(plugin.connect(client))
    form = dict(agent.requests[0].form)
    assert form["call"] == "connect" and form["user"] == "ann"
    assert (form["swfurl"], form["pageurl"]) == ("http://site/player.swf", "http://site/")
    assert "name" not in form


def test_query_parameters_cannot_replace_the_fields_the_server_sets() -> None:
    plugin, agent, _ = make(FakeResponse(200))
    result(publish(plugin, "cam", {"name": "other", "addr": "10.0.0.1", "call": "play", "k": "v"}))
    form = agent.requests[0].form
    assert [v for k, v in form if k == "name"] == ["cam"]
    assert [v for k, v in form if k == "addr"] == ["203.0.113.7"]
    assert [v for k, v in form if k == "call"] == ["publish"]
    assert ("k", "v") in form


def test_a_hook_without_a_url_accepts_without_asking() -> None:
    plugin, agent, _ = make(FakeResponse(403), on_publish=URL)
    assert plugin.play(FakeClient(), "cam", {}) is None
    assert plugin.connect(FakeClient()) is None
    assert agent.requests == []


# ---------------------------------------------------------------------------- the decision


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_a_2xx_answer_accepts(code: int) -> None:
    plugin, _, _ = make(FakeResponse(code))
    assert result(publish(plugin)) == ACCEPT


def test_a_302_on_publish_publishes_under_the_last_segment_of_location() -> None:
    plugin, _, _ = make(redirect(b"rtmp://media.example/live/renamed"))
    assert result(publish(plugin, "moveme")) == Rename("renamed")


def test_a_location_without_a_slash_is_the_new_name_as_a_whole() -> None:
    plugin, _, _ = make(redirect(b"renamed"))
    assert result(publish(plugin, "moveme")) == Rename("renamed")


@pytest.mark.parametrize(
    ("location", "name"),
    [
        ("other", "other"),
        ("/live/other", "other"),
        ("http://auth/live/other?x=1#top", "other"),
        ("other?token=1", "other"),
        ("/live/", ""),
        ("", ""),
    ],
)
def test_stream_name_from_location_drops_path_query_and_fragment(location: str, name: str) -> None:
    assert stream_name_from_location(location) == name


def test_a_302_on_play_plays_another_stream() -> None:
    plugin, _, _ = make(redirect(b"/live/ok"))
    assert result(plugin.play(FakeClient(), "alias", {})) == Rename("ok")


def test_a_302_on_connect_redirects_the_client_to_location() -> None:
    plugin, _, _ = make(redirect(b"rtmp://edge2.example/live"))
    decision = result(plugin.connect(FakeClient()))
    assert isinstance(decision, Redirect)
    assert decision.url == "rtmp://edge2.example/live"


def test_a_3xx_without_a_location_refuses() -> None:
    plugin, _, _ = make(FakeResponse(302, b"Found"))
    decision = result(publish(plugin))
    assert isinstance(decision, Reject) and "302" in decision.reason


def test_a_3xx_on_connect_without_a_location_refuses() -> None:
    plugin, _, _ = make(FakeResponse(301, b"Moved Permanently"))
    decision = result(plugin.connect(FakeClient()))
    assert decision == Reject("connect refused: the HTTP callback answered 301 Moved Permanently "
                              "without a Location")  # fmt: skip


def test_a_403_refuses_with_the_status_in_the_reason() -> None:
    plugin, _, _ = make(FakeResponse(403, b"Forbidden"))
    decision = result(publish(plugin))
    assert decision == Reject("publish refused by the HTTP callback: 403 Forbidden")


def test_a_5xx_refuses() -> None:
    plugin, _, _ = make(FakeResponse(503, b"Service Unavailable"))
    decision = result(plugin.play(FakeClient(), "cam", {}))
    assert isinstance(decision, Reject) and "503" in decision.reason


def test_a_short_text_body_is_quoted_in_the_reason() -> None:
    plugin, _, _ = make(FakeResponse(403, b"Forbidden", chunks=[b"bad ", b"key\n"]))
    assert result(publish(plugin)).reason.endswith("403 Forbidden: bad key")


@pytest.mark.parametrize(
    "body",
    [b"x" * 500, b"<html>\n<body>no</body>\n</html>", b"\xff\xfe\x00bin", b"a\x1b[31mred"],
)
def test_a_long_multiline_or_binary_body_stays_out_of_the_reason(body: bytes) -> None:
    plugin, _, _ = make(FakeResponse(403, b"Forbidden", chunks=[body]))
    assert result(publish(plugin)).reason == "publish refused by the HTTP callback: 403 Forbidden"


def test_a_404_on_play_refuses_with_stream_not_found() -> None:
    plugin, _, _ = make(FakeResponse(404, b"Not Found"))
    decision = result(plugin.play(FakeClient(), "cam", {}))
    assert decision.code == "NetStream.Play.StreamNotFound"


def test_a_refused_connection_refuses_without_naming_the_url() -> None:
    plugin, _, _ = make(ConnectionRefusedError())
    decision = result(publish(plugin))
    assert decision == Reject("publish refused: the HTTP callback failed: connection refused")
    assert "auth.example" not in decision.reason and "s3cret" not in decision.reason


def test_an_unknown_host_refuses() -> None:
    plugin, _, _ = make(DNSLookupError("auth.example"))
    assert result(publish(plugin)).reason.endswith("host not found")


def test_no_answer_within_the_timeout_refuses_and_cancels_the_request() -> None:
    plugin, agent, clock = make(None, on_publish=URL, timeout=2)
    d = publish(plugin)
    clock.advance(1.9)
    assert not d.called
    clock.advance(0.1)
    assert result(d) == Reject("publish refused: the HTTP callback failed: no answer within 2s")
    assert agent.cancelled == 1


def test_a_body_that_never_ends_counts_against_the_timeout() -> None:
    response = FakeResponse(200, chunks=[b"partial"], ends=False)
    plugin, _, clock = make(response, timeout=5)
    d = publish(plugin)
    assert not d.called
    clock.advance(5)
    assert isinstance(result(d), Reject)
    assert response.transport.producerState == "stopped"


def test_a_body_over_the_cap_is_cut_off_and_the_status_still_decides() -> None:
    response = FakeResponse(200, chunks=[b"x" * 16384] * (MAX_BODY // 16384 + 4))
    plugin, _, _ = make(response)
    assert result(publish(plugin)) == ACCEPT
    assert response.transport.producerState == "stopped"
    assert response.delivered <= MAX_BODY + 16384


# --------------------------------------------------------------------------- notifications


def test_publish_done_posts_a_notification_whose_answer_is_ignored() -> None:
    plugin, agent, _ = make(FakeResponse(500), on_publish_done=URL)
    stream = type("Stream", (), {"name": "cam", "app": "live"})()
    plugin.unpublish(FakeClient(), stream)
    form = dict(agent.requests[0].form)
    assert (form["call"], form["name"], form["addr"]) == ("publish_done", "cam", "203.0.113.7")


def test_play_done_posts_a_notification() -> None:
    plugin, agent, _ = make(FakeResponse(200), on_play_done=URL)
    plugin.stop(FakeClient(), "cam")
    assert dict(agent.requests[0].form)["call"] == "play_done"


def test_app_stop_waits_for_notifications_under_way_until_their_timeout() -> None:
    plugin, _, clock = make(None, on_play_done=URL, timeout=3)
    app = Application("live", AppConfig(), [plugin], StreamRegistry(), clock)
    plugin.stop(FakeClient(), "cam")
    stopped = plugin.app_stop(app)
    assert isinstance(stopped, Deferred) and not stopped.called
    clock.advance(3)
    assert stopped.called
    assert plugin.app_stop(app) is None


# -------------------------------------------------------------------------- configuration


def test_the_entry_point_builds_a_verified_plugin_from_config_options() -> None:
    spec = PluginSpec(
        "httpcallback",
        {"on_publish": "http://127.0.0.1:8080/auth", "timeout": 2, "reactor": MemoryReactorClock()},
    )
    plugin = build(spec)
    assert isinstance(plugin, HTTPCallback) and verifyObject(IApplication, plugin)
    assert plugin.timeout == 2.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "at least one URL"),
        ({"on_publish": "ftp://host/auth"}, "not an http:// or https:// URL"),
        ({"on_publish": "http:///auth"}, "not an http:// or https:// URL"),
        ({"on_publish": "http://host:99999/auth"}, "invalid port"),
        ({"on_publish": URL, "timeout": 0}, "positive number"),
        ({"on_publish": URL, "timeout": "5"}, "timeout: expected number, got string '5'"),
    ],
)
def test_bad_options_are_a_startup_error(options: dict[str, Any], message: str) -> None:
    options["reactor"] = MemoryReactorClock()
    with pytest.raises(ConfigError, match=message):
        build(PluginSpec("httpcallback", options, "fms.toml: apps.live.plugins[0]"))


def test_the_default_agent_does_not_log_each_connection() -> None:
    plugin = HTTPCallback(on_publish=URL, reactor=MemoryReactorClock())
    assert plugin.agent._pool._factory.noisy is False  # type: ignore[attr-defined]


def test_a_timeout_not_below_the_decision_timeout_is_warned_about_at_start() -> None:
    plugin, _, clock = make(None, on_publish=URL, timeout=10)
    app = Application("live", AppConfig(decision_timeout=10.0), [plugin], StreamRegistry(), clock)
    with capturedLogs() as events:
        plugin.app_start(app)
    assert any("decision_timeout" in formatEvent(e) for e in events)


def test_an_unknown_option_is_a_startup_error() -> None:
    with pytest.raises(
        ConfigError, match="on_publsh_done: unknown option of plugin 'httpcallback'"
    ):
        build(PluginSpec("httpcallback", {"on_publish": URL, "on_publsh_done": URL}))


# ---------------------------------------------------------------------------- integration


def test_the_application_chain_applies_the_callbacks_rename() -> None:
    plugin, _, clock = make(redirect(b"renamed"))
    app = Application("live", AppConfig(), [plugin], StreamRegistry(), clock)
    outcome = result(app.decide_publish(FakeClient(), "moveme", {"key": "k"}, "live", 256))
    assert outcome == Verdict(True, "renamed")


class Auth(Resource):
    """A tiny operator endpoint: 302 to 'renamed' with a body past the cap (1 MiB)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[bytes, list[bytes]]] = []

    def render_POST(self, request: Request) -> bytes:
        self.forms.append(dict(request.args))
        request.setResponseCode(302)
        request.setHeader(b"location", b"/live/renamed")
        return b"y" * (1024 * 1024)


def test_the_real_agent_talks_http_to_a_twisted_web_site() -> None:
    site_resource = Auth()
    site = Site(site_resource)
    pumps: list[iosim.IOPump] = []

    class Endpoint:
        def connect(self, factory: Factory) -> Deferred[Protocol]:
            client = factory.buildProtocol(None)
            server = site.buildProtocol(None)
            server_transport = iosim.FakeTransport(server, isServer=True)
            client_transport = iosim.FakeTransport(client, isServer=False)
            pumps.append(iosim.connect(server, server_transport, client, client_transport))
            return succeed(client)

    class Endpoints:
        def endpointForURI(self, uri: Any) -> Endpoint:
            return Endpoint()

    clock = MemoryReactorClock()
    agent = Agent.usingEndpointFactory(clock, Endpoints())
    plugin = HTTPCallback(on_publish="http://auth.example/auth", reactor=clock, agent=agent)
    d = publish(plugin, "moveme", {"key": "abc"})
    pumps[0].flush()
    assert result(d) == Rename("renamed")
    assert site_resource.forms[0][b"key"] == [b"abc"]
    assert site_resource.forms[0][b"call"] == [b"publish"]
