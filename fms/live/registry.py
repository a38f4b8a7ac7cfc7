"""The stream registry: (app, name) -> :class:`~fms.live.stream.LiveStream`.

One publisher per (app, name): a second claim is refused while the first keeps flowing. Players
may arrive before the publisher (they wait) and stay after it leaves (they are told, and wait
again). A stream without publisher and players is forgotten. Pure Python, no reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fms.counters import COUNTERS
from fms.live.stream import FanoutLimits, LiveStream, Player, PlayerSink


class StreamRegistry:
    """All live streams of one server process."""

    def __init__(
        self,
        limits: Callable[[str], FanoutLimits] | FanoutLimits | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock``: reactor time in seconds, for the streams' figures (:mod:`fms.live.stats`)."""
        self.clock = clock
        if limits is None:
            limits = FanoutLimits()
        if isinstance(limits, FanoutLimits):
            fixed = limits
            self._limits: Callable[[str], FanoutLimits] = lambda app: fixed
        else:
            self._limits = limits
        self._streams: dict[tuple[str, str], LiveStream] = {}
        self.publish_hooks: list[Callable[[LiveStream], None]] = []
        """Called with each stream a publisher claimed, once its publish started (the HLS
        side attaches its :class:`~fms.live.stream.StreamTap` here)."""
        self.demand_hooks: list[Callable[[LiveStream], None]] = []
        """Called with a stream whose players came or went, or whose publisher left (the
        pulls of :mod:`fms.server.pull` start and stop on it)."""

    def __iter__(self) -> Iterator[LiveStream]:
        return iter(list(self._streams.values()))

    def __len__(self) -> int:
        return len(self._streams)

    def get(self, app: str, name: str) -> LiveStream | None:
        return self._streams.get((app, name))

    def _stream(self, app: str, name: str) -> LiveStream:
        stream = self._streams.get((app, name))
        if stream is None:
            stream = self._streams[(app, name)] = LiveStream(
                app, name, self._limits(app), self.clock
            )
        return stream

    def hold(self, app: str, name: str) -> LiveStream:
        """The stream (app, name), created waiting if absent: a pull keeps its stream listed
        while it connects or retries. Forgotten at the next release or leave that leaves it
        idle, or by :meth:`drop_if_idle`."""
        return self._stream(app, name)

    def drop_if_idle(self, app: str, name: str) -> None:
        """Forget (app, name) if nobody publishes or plays it."""
        stream = self._streams.get((app, name))
        if stream is not None:
            self._forget_if_idle(stream)

    def claim(self, app: str, name: str, publisher: Any) -> LiveStream | None:
        """Make ``publisher`` the stream's publisher; None when another one already is."""
        stream = self._stream(app, name)
        if stream.published:
            return None
        stream.start_publish(publisher)
        for hook in self.publish_hooks:
            hook(stream)
        return stream

    def release(self, stream: LiveStream, publisher: Any) -> bool:
        """End ``publisher``'s claim (players are told); False if it held no claim."""
        if stream.publisher is not publisher:
            return False
        stream.stop_publish()
        self._forget_if_idle(stream)
        self._demand(stream)
        return True

    def play(
        self,
        app: str,
        name: str,
        sink: PlayerSink,
        stream_id: int,
        *,
        audio: bool = True,
        video: bool = True,
        flv: bool = False,
    ) -> tuple[LiveStream, Player]:
        """Add a player to (app, name), creating a waiting stream if nobody publishes it
        (``flv``: an HTTP-FLV viewer, given FLV tags)."""
        stream = self._stream(app, name)
        player = stream.add_player(sink, stream_id, audio=audio, video=video, flv=flv)
        self._demand(stream)
        return stream, player

    def leave(self, stream: LiveStream, player: Player) -> None:
        # What a player leaves behind in the metrics (fms.http.metrics adds those still here).
        COUNTERS.add("player_bytes_delivered", player.bytes_sent)
        COUNTERS.add("player_messages_delivered", player.messages_sent)
        COUNTERS.add("slow_player_skips", player.skips)
        COUNTERS.add("slow_player_skipped_messages", player.skipped_messages)
        stream.remove_player(player)
        self._forget_if_idle(stream)
        self._demand(stream)

    def _demand(self, stream: LiveStream) -> None:
        for hook in self.demand_hooks:
            hook(stream)

    def _forget_if_idle(self, stream: LiveStream) -> None:
        if not stream.published and not stream.players:
            if self._streams.get((stream.app, stream.name)) is stream:
                del self._streams[(stream.app, stream.name)]

    def flush(self, now: float) -> list[tuple[LiveStream, Exception]]:
        """Deliver pending messages of every stream that has some. A stream whose flush raises
        does not keep the others from theirs: the errors are returned, for the caller to log."""
        failures: list[tuple[LiveStream, Exception]] = []
        for _ in self.flush_round(now, 0, failures):
            pass
        return failures

    def flush_round(
        self, now: float, slice_players: int, failures: list[tuple[LiveStream, Exception]]
    ) -> Iterator[None]:
        """:meth:`flush` in slices of ``slice_players`` players (0: one slice), yielding in
        between (:meth:`LiveStream.flush_round`); failures are appended to ``failures`` as
        they happen."""
        for stream in list(self._streams.values()):
            if not stream.dirty:
                continue
            try:
                yield from stream.flush_round(now, slice_players)
            except Exception as exc:
                failures.append((stream, exc))
