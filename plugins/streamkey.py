"""Stream keys: publishing (and, if asked, playing) needs a ``?key=`` that the server knows.

The client adds the key to the stream name, as encoders already do: in OBS, the *Stream Key*
field holds ``cam?key=SECRET``; with FFmpeg, publish to ``rtmp://host/live/cam?key=SECRET``.
A key in the connect URL (``rtmp://host/live?key=SECRET``, the tcUrl) is also accepted, for
clients that cannot add a query to the stream name; the stream name's key wins when both are
given.

Two kinds of key; both options may be given in one table, and a key that either kind accepts
is accepted:

- **Static keys**, one secret per stream name; ``"*"`` is a secret that opens every stream::

      [[apps.live.plugins]]
      use = "streamkey"
      keys = { cam = "secret1", studio = "secret2" }

- **Signed keys** that expire, minted by a web site or a script that knows ``hmac_secret``
  (the server keeps no list)::

      [[apps.live.plugins]]
      use = "streamkey"
      hmac_secret = "a long random string"
      protect_play = true     # players need a key too (default: false, anyone may play)

  A signed key is ``EXPIRY-SIGNATURE``: ``EXPIRY`` is a Unix time in whole seconds (decimal)
  from which on the key is refused, and ``SIGNATURE`` is the hex HMAC-SHA256, keyed
  with ``hmac_secret`` (UTF-8), of the UTF-8 text ``APP/NAME:EXPIRY``, where ``APP`` is the
  application as the client connected to it (``live``, or ``live/room1``) and ``NAME`` the
  stream name without its query. A key is therefore good for one stream of one application
  until it expires. A key for ``live/cam``, valid for an hour, in Python::

      >>> import hmac, time; e = int(time.time()) + 3600
      >>> f"{e}-" + hmac.new(b"SECRET", f"live/cam:{e}".encode(), "sha256").hexdigest()
      '1767225600-d6866e08bd1b...'

  or :func:`sign` (``sign("SECRET", "live", "cam", e)``) where pyFMS is installed.

Keys travel in a URL query: percent-encode any ``+ & = # % ?`` in a static secret, or keep
to letters and digits. Keys are compared in constant time, and refusals (``Publish.Denied`` or
``Play.Failed`` with the reason ``stream key required``, ``invalid stream key`` or ``stream key
expired``) never say what the right key would have been. Publishers and (protected) players
use the same keys.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IClientView

KEY_PARAMETER = "key"
"""The query parameter that carries the key."""

ANY_STREAM = "*"
"""In ``keys``, the name whose secret opens every stream."""

MAX_EXPIRY_DIGITS = 12
"""Longest ``EXPIRY`` of a signed key accepted (12 digits reach the year 33658)."""

MISSING = Reject("stream key required")
INVALID = Reject("invalid stream key")
EXPIRED = Reject("stream key expired")


def signed_message(app: str, name: str, expiry: int) -> bytes:
    """What a signed key's HMAC covers: ``APP/NAME:EXPIRY`` in UTF-8."""
    return f"{app}/{name}:{expiry}".encode()


def sign(secret: str, app: str, name: str, expiry: int) -> str:
    """The signed key for stream ``name`` of ``app``, refused from ``expiry`` (Unix seconds) on."""
    mac = hmac.new(secret.encode(), signed_message(app, name, expiry), hashlib.sha256)
    return f"{expiry}-{mac.hexdigest()}"


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of two texts (compare_digest takes str only when it is ASCII)."""
    return hmac.compare_digest(given.encode(), expected.encode())


class StreamKey(Plugin):
    """Refuses publish (and, with ``protect_play``, play) without a valid stream key."""

    def __init__(
        self,
        *,
        keys: Mapping[str, str] | None = None,
        hmac_secret: str | None = None,
        protect_play: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``keys``: stream name -> secret (``"*"``: any stream); ``hmac_secret``: the secret of
        signed keys; ``clock``: the current Unix time in seconds (tests pass their own)."""
        if keys is None:
            keys = {}
        if not isinstance(keys, Mapping):
            raise ValueError('keys: expected a table of stream name = secret, e.g. { cam = "..." }')
        for name, secret in keys.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"keys: stream names must be non-empty strings, not {name!r}")
            if not isinstance(secret, str) or not secret:
                raise ValueError(f"keys.{name}: the secret must be a non-empty string")
        if hmac_secret is not None and (not isinstance(hmac_secret, str) or not hmac_secret):
            raise ValueError("hmac_secret: must be a non-empty string")
        if not keys and hmac_secret is None:
            raise ValueError("configure keys, hmac_secret or both: otherwise no key could pass")
        if not isinstance(protect_play, bool):
            raise ValueError("protect_play: must be true or false")
        self._keys = dict(keys)
        self._hmac_secret = hmac_secret
        self.protect_play = protect_play
        self._clock = clock

    def __repr__(self) -> str:
        signed = ", signed keys" if self._hmac_secret is not None else ""
        return f"<StreamKey streams={sorted(self._keys)}{signed} protect_play={self.protect_play}>"

    def publish(
        self, client: IClientView, name: str, query: dict[str, str], kind: str
    ) -> Reject | None:
        return self.check(client, name, query)

    def play(self, client: IClientView, name: str, query: dict[str, str]) -> Reject | None:
        if not self.protect_play:
            return None
        return self.check(client, name, query)

    def check(self, client: IClientView, name: str, query: Mapping[str, str]) -> Reject | None:
        """None if the key of ``query`` (else of the connect query) opens ``client.app/name``,
        else the refusal."""
        connect_query: Mapping[str, Any] = client.query or {}
        key = query.get(KEY_PARAMETER) or connect_query.get(KEY_PARAMETER)
        if not isinstance(key, str) or not key:
            return MISSING
        if self._static_key_matches(name, key):
            return None
        if self._hmac_secret is not None:
            return self._check_signed(self._hmac_secret, client.app, name, key)
        return INVALID

    def _static_key_matches(self, name: str, key: str) -> bool:
        matched = False
        for stream in (name, ANY_STREAM):
            secret = self._keys.get(stream)
            # No early exit: the time taken does not tell which secret matched.
            if secret is not None and _same(key, secret):
                matched = True
        return matched

    def _check_signed(self, secret: str, app: str, name: str, key: str) -> Reject | None:
        expiry_text, dash, signature = key.partition("-")
        if (
            not dash
            or not expiry_text.isascii()
            or not expiry_text.isdigit()
            or len(expiry_text) > MAX_EXPIRY_DIGITS
        ):
            return INVALID
        expiry = int(expiry_text)
        expected = sign(secret, app, name, expiry).partition("-")[2]
        if not _same(signature.lower(), expected):
            return INVALID
        if self._clock() >= expiry:
            return EXPIRED
        return None


__all__ = ["StreamKey", "sign", "signed_message"]
