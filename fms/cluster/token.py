"""The token of the cluster's private path: what lets one node pull from another.

A node that pulls a stream from another node (:mod:`fms.cluster.pulls`) connects as an RTMP
client whose ``connect`` carries, in the query of its ``app`` (and so of its tcUrl), two
parameters (``docs/cluster.md`` states the wire format):

- ``fmscluster=v1.TS.NONCE.MAC``: ``TS`` the Unix time the token was made (whole seconds),
  ``NONCE`` 16 hex digits drawn for this connection, ``MAC`` the hex HMAC-SHA256, keyed with
  ``[cluster] secret``, of ``v1\\nAPP\\nTS\\nNONCE\\nVIA`` (``APP`` the application connected to,
  without its query);
- ``fmsvia=URL,URL,...``: the nodes the request went through, the connecting node first (its
  ``node_url``), then the nodes whose private links asked it for the stream (an edge tree).

The serving node checks the token before any plugin (:mod:`fms.cluster.private`): the MAC
(compared in constant time), a ``TS`` within ``token_window`` seconds of its own clock either
way, a nonce not seen in this process within the window (so a token read off the wire cannot
be played back to this process), and a ``VIA`` that does not name the serving node (a loop of
parents). Nothing here reads a clock or a socket: ``now`` (seconds) is an argument.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from urllib.parse import urlencode

MARKER = "fmscluster"
"""The query parameter that makes a ``connect`` a private-path link (its token)."""
VIA = "fmsvia"
"""The query parameter that lists the nodes a private-path request went through."""
VERSION = "v1"
MAX_VIA = 16
"""Nodes a request may have gone through: a deeper tree is refused (a loop gone unnoticed)."""


class TokenRefused(Exception):
    """A private-path ``connect`` whose token does not hold; the message says why (logged,
    never sent to the peer)."""


def _mac(secret: str, app: str, stamp: int, nonce: str, via: str) -> str:
    text = f"{VERSION}\n{app}\n{stamp}\n{nonce}\n{via}".encode()
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


def make_query(secret: str, app: str, via: tuple[str, ...], now: float, nonce: str = "") -> str:
    """The query a private-path ``connect`` to ``app`` carries (without the ``?``), made at
    ``now`` (Unix seconds) by ``via[0]`` on behalf of the nodes after it."""
    nonce = nonce or os.urandom(8).hex()
    stamp = int(now)
    joined = ",".join(via)
    token = f"{VERSION}.{stamp}.{nonce}.{_mac(secret, app, stamp, nonce, joined)}"
    return urlencode({MARKER: token, VIA: joined})


class TokenCheck:
    """Verifies private-path tokens for one process: ``secret`` shared by the nodes,
    ``window`` seconds a token stays valid either side of its time, ``node_url`` this node
    (refused in a token's ``via``)."""

    def __init__(self, secret: str, window: float, node_url: str) -> None:
        self.secret = secret
        self.window = window
        self.node_url = node_url
        self._seen: dict[str, float] = {}
        """Nonces accepted, with when (seconds) they may be forgotten."""

    def verify(self, app: str, query: dict[str, str], now: float) -> tuple[str, ...]:
        """The ``via`` of a valid token in ``query`` for a ``connect`` to ``app`` at ``now``
        (Unix seconds); raises :class:`TokenRefused`."""
        token = query.get(MARKER, "")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise TokenRefused("no valid cluster token")
        _, stamp_text, nonce, mac = parts
        if not stamp_text.isdigit() or not nonce or len(nonce) > 64:
            raise TokenRefused("malformed cluster token")
        joined = query.get(VIA, "")
        expected = _mac(self.secret, app, int(stamp_text), nonce, joined)
        if not hmac.compare_digest(expected, mac):
            raise TokenRefused("wrong cluster token (another secret, or altered)")
        age = now - int(stamp_text)
        if abs(age) > self.window:
            raise TokenRefused(f"cluster token made {age:.0f}s ago (window {self.window:g}s)")
        self._forget(now)
        if nonce in self._seen:
            raise TokenRefused("cluster token used already (replayed)")
        via = tuple(node for node in joined.split(",") if node)
        if not via:
            raise TokenRefused("cluster token names no node")
        if len(via) > MAX_VIA:
            raise TokenRefused(f"cluster request went through {len(via)} nodes (a loop?)")
        if _base(self.node_url) in {_base(node) for node in via}:
            raise TokenRefused(f"cluster loop: the request came back here through {joined}")
        self._seen[nonce] = int(stamp_text) + self.window + 1.0
        return via

    def _forget(self, now: float) -> None:
        """Drop the nonces whose tokens expired (they would be refused by their time)."""
        if len(self._seen) < 64:
            return
        for nonce, until in list(self._seen.items()):
            if until < now:
                del self._seen[nonce]


def _base(url: str) -> str:
    return url.rstrip("/").lower()
