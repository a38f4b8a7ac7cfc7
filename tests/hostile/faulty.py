"""A deliberately broken plugin for the hostile suite (``use = "faulty"``): it raises, or
never answers, where a client asks it to, so tests can check that only that client suffers."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from fms.apps.api import NotHandled, Plugin
from fms.apps.interfaces import IClientView, IStreamView


class Faulty(Plugin):
    def connect(self, client: IClientView) -> Any:
        if "boom" in client.query:
            raise RuntimeError("faulty plugin: connect")
        if "hang" in client.query:
            return Deferred()  # never decides: the decision timeout refuses the client
        return None

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        if name == "boom":
            raise RuntimeError("faulty plugin: publish")
        return None

    def play(self, client: IClientView, name: str, query: dict[str, str]) -> Any:
        if name == "boom":
            raise RuntimeError("faulty plugin: play")
        return None

    def call(self, client: IClientView, method: str, args: tuple[Any, ...]) -> Any:
        if method == "boom":
            raise RuntimeError("faulty plugin: call")
        raise NotHandled(method)

    def media(self, stream: IStreamView, message: Any) -> None:
        if stream.name == "boom-media":
            raise RuntimeError("faulty plugin: media")
