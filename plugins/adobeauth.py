"""User names and passwords, checked the way Adobe's and Limelight's servers did it.

Encoders log in with the credentials in the URL: ``rtmp://alice:secret@host/live/cam`` in
FFmpeg, OBS Studio (Server ``rtmp://host/live``, with *Use authentication* ticked), GStreamer's
``rtmp2sink`` and many hardware encoders. The password never travels: the server refuses the
first ``connect`` with a challenge and the client connects again with a hash of the password
and the challenge (``authmod=adobe``, or its digest variant ``authmod=llnw``)::

    [[apps.live.plugins]]
    use = "adobeauth"
    users = { alice = "secret1", bob = "secret2" }

Options (all but the users are optional):

- ``users``: a table of user name = password; and/or ``users_file``: the path of a file (relative
  to the configuration file's folder) with one ``user:password`` per line. Blank lines and lines
  starting with ``#`` are ignored; everything after the first ``:`` is the password, without the
  spaces around it. Both schemes need the password itself (each challenge hashes it anew), so it
  is stored as written: the server refuses to start while group or others may read or write the
  file (``chmod 600``, owned by the user the server runs as), and a configuration file holding
  ``users`` deserves the same protection. The file is read at start and on ``SIGHUP``. User names
  are 1 to 64 of the characters ``A-Z a-z 0-9 . _ - @`` (FFmpeg sends at most 49 characters of a
  user name or password; letters, digits and ``- . _ ~`` are safe in every client's URL, anything
  else must be percent-encoded there, which not every client decodes).
- ``scope``: ``"publish"`` (the default) or ``"all"``. With ``"all"`` every connection must log
  in, players too (``ffplay rtmp://alice:secret@host/live/cam``). With ``"publish"`` players may
  watch without credentials. The schemes log in at ``connect``, before the client says what it
  wants, and a client retries only a refused ``connect`` (FFmpeg gives up on a refused
  ``publish``), so the decision is taken there, from what the client announced: a ``connect``
  with ``type: 'nonprivate'`` (FFmpeg, OBS, GStreamer's ``rtmp2sink``, librtmp and Flash
  Media Live Encoder send it when they are about to publish; players do not) is challenged, and
  so is every ``connect`` that asks to log in (``?authmod=`` in its URL); any other connection
  is let in and may play, and its ``publish`` is refused (``NetStream.Publish.Denied``). An
  encoder that publishes without announcing it is therefore refused with a clear reason rather
  than let in.
- ``authmods``: the schemes accepted, the first one offered (default ``["adobe", "llnw"]``).
  The client follows the one named in the first refusal; one that asks for another accepted
  scheme (``?authmod=llnw``) gets it.
- ``challenge_ttl``: seconds a challenge stays valid (default 60; clients answer within
  milliseconds).
- ``secret`` (or ``secret_file``, protected like ``users_file``): the key that signs challenges.
  Without one, the key is derived from the user table, which every worker of
  ``fms run --workers N`` reads from the same configuration (so whoever knows every password
  could sign challenges, and a changed password voids the challenges in flight: their clients
  start over).

The exchange, three connections, each refused with ``NetConnection.Connect.Rejected`` (level
``error``) except the last:

1. ``connect`` without credentials: ``[ AccessManager.Reject ] : [ code=403 need auth;
   authmod=adobe ] : ``.
2. ``connect`` to ``live?authmod=adobe&user=alice``: ``[ AccessManager.Reject ] : [
   authmod=adobe ] : ?reason=needauth&user=alice&salt=S&challenge=C&opaque=O``.
3. ``connect`` to ``live?authmod=adobe&user=alice&challenge=C2&response=R&opaque=O``, accepted
   when ``R = base64(md5(base64(md5(user + S + password)) + O + C2))``, ``C2`` being the
   client's own challenge (the server's ``C`` is there for clients that got no ``opaque``;
   this server always sends one and needs it back).

``authmod=llnw`` answers step 2 with ``?reason=needauth&user=alice&nonce=N``, and step 3 carries
``nonce``, ``cnonce``, ``nc`` and ``response``: the hex MD5 of ``HA1:N:nc:cnonce:auth:HA2``,
where ``HA1`` is the hex MD5 of ``user:live:password`` and ``HA2`` of ``publish:/APP`` (with
``/_definst_`` appended when ``APP`` has no ``/``), as FFmpeg computes it (the realm is always
``live`` and the method ``publish``, whatever the application and what the client then does).

A wrong password and an unknown user get the same answer, ``?reason=authfailed`` (FFmpeg says
"Incorrect username/password"), after the same work, so refusals do not tell which user names
exist; the server's log says which it was. A challenge is good for one answer, from the address
and application it was issued to, for ``challenge_ttl`` seconds; a late or replayed answer gets
a new challenge (FFmpeg, which tries once, reports "Authentication failed").

Workers and replays: a challenge carries its issue time, a random part and an HMAC-SHA256 of
them (with the user, the client's address and the application) under the key, so any worker
checks a challenge that another issued without shared memory. That a challenge was used is
marked in a private folder (``used_dir``; by default one under the temporary directory named
after the key, so every worker of the server finds the same one): an answer replayed to any
worker of this machine is refused. Markers are removed once their challenge expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IClientView
from fms.log import Logger

log = Logger(namespace="fms.plugins.adobeauth")

ADOBE = "adobe"
LLNW = "llnw"
AUTHMODS = (ADOBE, LLNW)
SCOPES = ("publish", "all")

LLNW_REALM = "live"
LLNW_METHOD = "publish"
LLNW_QOP = "auth"
LLNW_DEFAULT_INSTANCE = "/_definst_"
"""FFmpeg's constants for ``authmod=llnw``: the realm, method and qop it hashes."""

USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
"""User names this plugin accepts: they travel unescaped in the clients' URLs and ours."""

TOKEN = re.compile(r"[0-9a-f]{12}[0-9a-f]{8}[0-9a-f]{16}")
"""A challenge token (``opaque`` or ``nonce``): issue time (ms, 12 hex digits), a random part
(8 hex digits), the first 16 hex digits of the HMAC."""

DERIVED_DIGITS = 16
"""Hex digits of the salt and challenge derived from a token."""

MAX_TTL = 3600.0
"""Longest ``challenge_ttl`` accepted (seconds)."""

PUBLISHER_TYPE = "nonprivate"
"""The ``type`` that encoders put in ``connect`` when they are about to publish."""


def need_auth(authmod: str) -> str:
    """The description refusing a ``connect`` without credentials (step 1)."""
    return f"[ AccessManager.Reject ] : [ code=403 need auth; authmod={authmod} ] : "


def auth_refusal(authmod: str, query: str) -> str:
    """The description of a refusal in steps 2 and 3 (``query`` without its ``?``)."""
    return f"[ AccessManager.Reject ] : [ authmod={authmod} ] : ?{query}"


def _md5_base64(text: str) -> str:
    return base64.b64encode(hashlib.md5(text.encode()).digest()).decode()


def _md5_hex(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def adobe_response(user: str, password: str, salt: str, opaque: str, client_challenge: str) -> str:
    """What a client answers to an ``authmod=adobe`` challenge (``opaque``, or the server's
    challenge when the client got no opaque)."""
    return _md5_base64(_md5_base64(user + salt + password) + opaque + client_challenge)


def llnw_response(user: str, password: str, app: str, nonce: str, nc: str, cnonce: str) -> str:
    """What a client answers to an ``authmod=llnw`` challenge for application ``app``."""
    ha1 = _md5_hex(f"{user}:{LLNW_REALM}:{password}")
    uri = "/" + app + ("" if "/" in app else LLNW_DEFAULT_INSTANCE)
    ha2 = _md5_hex(f"{LLNW_METHOD}:{uri}")
    return _md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{LLNW_QOP}:{ha2}")


def auth_query(client: IClientView) -> dict[str, str]:
    """The query of the connect URL, as the client wrote it.

    The view's ``query`` reads it as a web form, where ``+`` means a space; these clients put
    base64 (which has ``+``) there unescaped. So the query is read again from the app name (or,
    without a query there, the tcUrl), decoding ``%XX`` only; the last of repeated keys wins,
    as in the view.
    """
    app = client.params.get("app")
    source = app if isinstance(app, str) and "?" in app else client.tc_url or ""
    _, mark, text = source.partition("?")
    if not mark:
        return {}
    found: dict[str, str] = {}
    for pair in text.split("&"):
        key, _, value = pair.partition("=")
        found[unquote(key)] = unquote(value)
    return found


def _check_private(path: Path, option: str) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(
            f"{option}: {path} may be read or written by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it"
        )


def _check_user(name: object, where: str) -> str:
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise ValueError(
            f"{where}: user name {name!r}: use 1 to 64 of the characters A-Z a-z 0-9 . _ - @"
        )
    return name


def read_users_file(path: Path) -> dict[str, str]:
    """``user:password`` lines of ``path`` (see the module docstring); ValueError explains a
    file that is not private or a line that is not a user and a password."""
    _check_private(path, "users_file")
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, password = line.partition(":")
        where = f"users_file {path}, line {number}"
        user, password = user.strip(), password.strip()
        if not colon or not password:
            raise ValueError(f"{where}: expected user:password")
        if _check_user(user, where) in users:
            raise ValueError(f"{where}: user {user!r} is listed twice")
        users[user] = password
    return users


class AdobeAuth(Plugin):
    """Challenge-response logins at ``connect`` (``authmod=adobe`` and ``authmod=llnw``)."""

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        users_file: str | Path | None = None,
        scope: str = "publish",
        authmods: Sequence[str] = AUTHMODS,
        challenge_ttl: float = 60.0,
        secret: str | None = None,
        secret_file: str | Path | None = None,
        used_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """See the module docstring for the options; ``clock``: the current Unix time in
        seconds (tests pass their own)."""
        table: dict[str, str] = {}
        if users is not None:
            if not isinstance(users, Mapping):
                raise ValueError(
                    'users: expected a table of user = password, e.g. { alice = "..." }'
                )
            for name, password in users.items():
                _check_user(name, "users")
                if not isinstance(password, str) or not password:
                    raise ValueError(f"users.{name}: the password must be a non-empty string")
                table[name] = password
        if users_file is not None:
            if not isinstance(users_file, (str, Path)) or not str(users_file):
                raise ValueError("users_file: expected the path of a file")
            for name, password in read_users_file(Path(users_file)).items():
                if name in table:
                    raise ValueError(f"users_file: user {name!r} is also in users")
                table[name] = password
        if not table:
            raise ValueError("configure users, users_file or both: otherwise nobody could log in")
        if scope not in SCOPES:
            raise ValueError(f"scope: expected one of {', '.join(SCOPES)}, not {scope!r}")
        if (
            isinstance(authmods, str)
            or not isinstance(authmods, Sequence)
            or not authmods
            or any(mod not in AUTHMODS for mod in authmods)
        ):
            raise ValueError(f"authmods: expected a non-empty list of {', '.join(AUTHMODS)}")
        if (
            isinstance(challenge_ttl, bool)
            or not isinstance(challenge_ttl, (int, float))
            or not 0 < challenge_ttl <= MAX_TTL
        ):
            raise ValueError(f"challenge_ttl: expected seconds above 0, at most {MAX_TTL:g}")
        self._users = table
        self.scope = scope
        self.authmods = tuple(dict.fromkeys(authmods))
        self.challenge_ttl = float(challenge_ttl)
        self._key = self._signing_key(table, secret, secret_file)
        self._clock = clock
        self._decoy = secrets.token_hex(16)
        self._used: dict[str, float] = {}
        self._used_dir = self._spent_folder(used_dir)
        self._logged_in: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def _spent_folder(self, folder: Path | None) -> Path:
        """Where a used challenge is marked for every process of this server on this machine
        (the workers of ``fms run --workers`` share the key, so they derive the same folder
        under the temporary directory); created private (0700) and refused when another user
        owns it."""
        if folder is None:
            name = "fms-adobeauth-" + hashlib.sha256(b"spent\0" + self._key).hexdigest()[:16]
            folder = Path(tempfile.gettempdir()) / name
        folder = Path(folder)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ValueError(f"used_dir: {folder} must belong to this user with mode 0700")
        return folder

    def _mark_spent(self, token: str, expires: float, now: float) -> bool:
        """Mark ``token`` used in the shared folder; False when a process marked it already.
        Markers of expired challenges are removed on the way (their names carry the expiry)."""
        digest = hashlib.sha256(token.encode()).hexdigest()[:32]
        marker = self._used_dir / f"{int(expires)}-{digest}"
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        for old in self._used_dir.iterdir():
            stamp = old.name.split("-", 1)[0]
            if stamp.isdigit() and int(stamp) + 1 < now:
                old.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signing_key(
        users: Mapping[str, str], secret: str | None, secret_file: str | Path | None
    ) -> bytes:
        if secret is not None and secret_file is not None:
            raise ValueError("give secret or secret_file, not both")
        if secret_file is not None:
            if not isinstance(secret_file, (str, Path)) or not str(secret_file):
                raise ValueError("secret_file: expected the path of a file")
            path = Path(secret_file)
            _check_private(path, "secret_file")
            secret = path.read_text(encoding="utf-8").strip()
            if not secret:
                raise ValueError(f"secret_file: {path} is empty")
        if secret is not None:
            if not isinstance(secret, str) or not secret:
                raise ValueError("secret: must be a non-empty string")
            return hashlib.sha256(b"fms.plugins.adobeauth secret\0" + secret.encode()).digest()
        # Every worker reads the same users, so every worker derives the same key.
        derived = hashlib.sha256(b"fms.plugins.adobeauth users\0")
        for name in sorted(users):
            derived.update(f"{name}\0{users[name]}\0".encode())
        return derived.digest()

    def __repr__(self) -> str:
        return (
            f"<AdobeAuth users={len(self._users)} scope={self.scope} "
            f"authmods={','.join(self.authmods)}>"
        )

    # ------------------------------------------------------------------------------ hooks

    def connect(self, client: IClientView) -> Reject | None:
        query = auth_query(client)
        authmod = query.get("authmod")
        if authmod is None:
            if self.scope == "all" or client.params.get("type") == PUBLISHER_TYPE:
                return Reject(need_auth(self.authmods[0]))
            return None
        if authmod not in self.authmods:
            return Reject(need_auth(self.authmods[0]))
        user = query.get("user", "")
        if not USER_NAME.fullmatch(user):
            # No configured user has such a name: refusing it tells nothing about the others.
            return self._failed(client, authmod, user, "a user name no configuration allows")
        if "response" not in query:
            return self._challenge(client, authmod, user)
        token = query.get("opaque" if authmod == ADOBE else "nonce", "")
        problem = self._spend(token, client, authmod, user)
        if problem == "invalid":
            return self._failed(client, authmod, user, "a challenge this server did not issue")
        if problem is not None:
            log.info(
                "{peer} answered a {problem} challenge for {user!r}: challenged again",
                peer=client.peer, problem=problem, user=user,
            )  # fmt: skip
            return self._challenge(client, authmod, user)
        password = self._users.get(user)
        # An unknown user costs the same work as a known one: the time tells nothing.
        if not self._answer_matches(
            authmod, query, client.app, user, password or self._decoy, token
        ):
            why = "a wrong password" if password is not None else "an unknown user"
            return self._failed(client, authmod, user, why)
        self._logged_in[client] = user
        log.info(
            "{user!r} logged in from {peer} to {app!r} (authmod={authmod})",
            user=user, peer=client.peer, app=client.app, authmod=authmod,
        )  # fmt: skip
        return None

    def publish(
        self, client: IClientView, name: str, query: dict[str, str], kind: str
    ) -> Reject | None:
        if client in self._logged_in:
            return None
        return Reject(
            "publishing needs a login: publish to rtmp://USER:PASSWORD@host/app/stream "
            "with a client that supports authmod=adobe or llnw"
        )

    def disconnect(self, client: IClientView) -> None:
        self._logged_in.pop(client, None)

    def user_of(self, client: IClientView) -> str | None:
        """The user ``client`` logged in as, or None."""
        return self._logged_in.get(client)

    # ------------------------------------------------------------------------- challenges

    def _mac(self, token_head: str, client: IClientView, authmod: str, user: str) -> str:
        message = "\0".join((token_head, authmod, user, client.host, client.app)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:16]

    def _derived(self, label: str, token: str) -> str:
        mac = hmac.new(self._key, f"{label}\0{token}".encode(), hashlib.sha256)
        return mac.hexdigest()[:DERIVED_DIGITS]

    def _challenge(self, client: IClientView, authmod: str, user: str) -> Reject:
        head = f"{round(self._clock() * 1000):012x}{secrets.token_hex(4)}"
        token = head + self._mac(head, client, authmod, user)
        if authmod == ADOBE:
            salt, challenge = self._derived("salt", token), self._derived("challenge", token)
            query = f"reason=needauth&user={user}&salt={salt}&challenge={challenge}&opaque={token}"
        else:
            query = f"reason=needauth&user={user}&nonce={token}"
        return Reject(auth_refusal(authmod, query))

    def _spend(self, token: str, client: IClientView, authmod: str, user: str) -> str | None:
        """None when ``token`` is a challenge issued for this client and user that is neither
        expired nor used, and mark it used; else ``"invalid"``, ``"expired"`` or ``"used"``."""
        if not TOKEN.fullmatch(token):
            return "invalid"
        head, mac = token[:20], token[20:]
        if not hmac.compare_digest(mac, self._mac(head, client, authmod, user)):
            return "invalid"
        now = self._clock()
        issued = int(head[:12], 16) / 1000
        expires = issued + self.challenge_ttl
        if not issued - self.challenge_ttl <= now < expires:
            return "expired"
        while self._used:
            oldest = next(iter(self._used))
            if self._used[oldest] > now:
                break
            del self._used[oldest]
        if token in self._used:
            return "used"
        self._used[token] = expires
        if not self._mark_spent(token, expires, now):
            return "used"  # another worker took it
        return None

    def _answer_matches(
        self, authmod: str, query: Mapping[str, str], app: str, user: str, password: str, token: str
    ) -> bool:
        response = query.get("response", "")
        if authmod == ADOBE:
            salt = self._derived("salt", token)
            expected = adobe_response(user, password, salt, token, query.get("challenge", ""))
            return hmac.compare_digest(response.encode(), expected.encode())
        expected = llnw_response(
            user, password, app, token, query.get("nc", ""), query.get("cnonce", "")
        )
        return hmac.compare_digest(response.lower().encode(), expected.encode())

    def _failed(self, client: IClientView, authmod: str, user: str, why: str) -> Reject:
        log.info(
            "login of {user!r} from {peer} to {app!r} refused: {why}",
            user=user, peer=client.peer, app=client.app, why=why,
        )  # fmt: skip
        return Reject(auth_refusal(authmod, "reason=authfailed"))


__all__ = [
    "AUTHMODS",
    "AdobeAuth",
    "adobe_response",
    "auth_query",
    "auth_refusal",
    "llnw_response",
    "need_auth",
    "read_users_file",
]
