"""A chat room per application: client-to-server calls and server-to-client calls.

The example of RPC in both directions that Flash Media Server applications were known for,
written as a pyFMS plugin. Clients call (``NetConnection.call`` in Flash, ``call()`` on
:class:`fms.rtmp.client.ClientConnection`):

- ``join(nick)``: enter the room; answers the list of nicknames present, tells everyone else
  ``onJoin(nick)``, then the server calls the newcomer's ``getClientInfo()`` and keeps what it
  answers (shown by ``who``);
- ``say(text)``: every client of the application (on this worker) receives
  ``onMessage(nick, text)``;
- ``who()``: answers ``{nick: info}`` for everyone present.

Configuration::

    [[apps.chat.plugins]]
    use = "chat"
    max_length = 500     # longest message, in characters

Leaving (or disconnecting) tells everyone ``onLeave(nick)``.

With ``fms run --workers``, the room (its nicknames, and who hears a message) is the worker's
the client connected to: the plugin keeps it in memory.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from fms.apps.api import CallError, Plugin
from fms.apps.interfaces import IAppView, IClientView

log = Logger(namespace="fms.plugins.chat")


class Chat(Plugin):
    """One room per application; see the module docstring."""

    def __init__(self, *, max_length: int = 500, max_nick: int = 32) -> None:
        self.max_length = max_length
        self.max_nick = max_nick
        self.app: IAppView | None = None
        self.nicks: dict[int, str] = {}
        self.info: dict[int, Any] = {}

    def app_start(self, app: IAppView) -> None:
        self.app = app

    async def call(self, client: IClientView, method: str, args: tuple[Any, ...]) -> Any:
        if method == "join":
            return await self._join(client, args)
        if method == "say":
            return self._say(client, args)
        if method == "who":
            return {nick: self.info.get(cid) for cid, nick in self.nicks.items()}
        return await super().call(client, method, args)

    async def _join(self, client: IClientView, args: tuple[Any, ...]) -> list[str]:
        nick = args[0] if args else None
        if not isinstance(nick, str) or not nick.strip() or len(nick) > self.max_nick:
            raise CallError(f"a nickname is 1 to {self.max_nick} characters")
        if nick in self.nicks.values():
            raise CallError(f"{nick!r} is taken")
        present = sorted(self.nicks.values())
        self._tell_others(client, "onJoin", nick)
        self.nicks[client.id] = nick
        client.call("getClientInfo").addCallbacks(
            lambda values: self.info.__setitem__(client.id, values[0] if values else None),
            lambda failure: log.info(
                "{nick} did not answer getClientInfo: {why}",
                nick=nick,
                why=failure.getErrorMessage(),
            ),
        )
        return present

    def _say(self, client: IClientView, args: tuple[Any, ...]) -> bool:
        nick = self.nicks.get(client.id)
        if nick is None:
            raise CallError("join first")
        text = args[0] if args else None
        if not isinstance(text, str) or not text or len(text) > self.max_length:
            raise CallError(f"a message is 1 to {self.max_length} characters")
        assert self.app is not None
        self.app.broadcast("onMessage", nick, text, everywhere=False)  # the room is this worker's
        return True

    def _tell_others(self, client: IClientView, method: str, *args: Any) -> None:
        assert self.app is not None
        for other in self.app.clients:
            if other.id != client.id:
                other.send(method, *args)

    def disconnect(self, client: IClientView) -> None:
        nick = self.nicks.pop(client.id, None)
        self.info.pop(client.id, None)
        if nick is not None:
            self._tell_others(client, "onLeave", nick)
