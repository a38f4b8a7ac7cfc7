"""A live stream: one publisher's messages, the caches a late joiner needs, and the fan-out.

No reactor and no sockets here: players are reached through :class:`PlayerSink`, time is passed
in, and the Twisted layer decides when to call :meth:`LiveStream.flush`.

**Encode once, write shared bytes.** Every message is chunk-encoded once per *log* (players that
want the same bytes: the same message stream id and the same audio/video selection, so almost
always one log per stream) with a type-0 header and an absolute timestamp, so the same
``bytes`` object is valid for every player in that log. Each player holds only a cursor into the
log; a flush sends everything from its cursor to the head in one write, and players at the same
cursor share one joined ``bytes``.

**Slow players are lagging cursors.** A player whose transport pushes back is skipped; its
cursor falls behind. Past the soft bound (bytes or seconds behind) it is *parked*: it receives
nothing until the next keyframe, then resumes there (after the sequence headers if they changed).
Past the hard bound, or with no write progress for ``stall_timeout``, it is closed. The log keeps
only what the cursors and the GOP cache still need, so a stalled player never grows memory
beyond its bound and never delays the publisher or anyone else.

**Late joiners** get the cached metadata and codec sequence headers, then the cached GOP from
the newest keyframe, then live messages, so their first picture decodes at once.

**HTTP-FLV viewers** are players whose log holds FLV tags instead of RTMP chunks (the encoding
is part of the log key), so a tag too is built once per message for all of them. FLV tags carry
their timestamp in the shared bytes, so it is rebased per *stream*, not per viewer: the first
media message of a publish is at 0 (:meth:`LiveStream.flv_time`), and a viewer that joins later
starts at the time of its cached GOP's keyframe (FFmpeg and mpegts.js take a stream that does
not start at 0; rewriting the time per viewer would cost an encoding per viewer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from fms.amf import encode_payload
from fms.live import flv
from fms.live.headers import TrackHeaders
from fms.live.limits import FanoutLimits
from fms.live.log import Player, PlayerSink, PlayerState, SharedLog
from fms.live.media import DATA_INFO, MediaInfo, describe
from fms.live.stats import StreamStats
from fms.live.tracks import METADATA
from fms.rtmp.chunks import RawMessage, encode_shared
from fms.rtmp.constants import U32_MASK, ChunkStreamId
from fms.rtmp.messages import Data, Media, encode_message


class StreamObserver(Protocol):
    """Follows a stream beyond this process: the worker relay (one observer per stream at
    most). The sending side gets every published message; the receiving side learns of player
    changes, which it reports to the publisher's worker."""

    @property
    def remote_players(self) -> int:
        """Players of this stream elsewhere (other workers), as last reported."""
        ...

    def published(self, message: Media | Data, info: MediaInfo) -> None:
        """A message was published (``@clearDataFrame`` included, as a Data message)."""
        ...

    def players_changed(self, stream: LiveStream) -> None:
        """A player came or went on this process."""
        ...


class StreamTap(Protocol):
    """Follows one publish's audio and video in this process (the HLS muxer, :mod:`fms.hls`):
    attached when the publish starts, told when it stops, then dropped."""

    def published(self, message: Media, info: MediaInfo) -> None:
        """An audio or video message was published (``info``: its header, read once)."""
        ...

    def stopped(self) -> None:
        """The publish ended."""
        ...


class LiveStream:
    """(app, name) -> publisher, players, caches and logs."""

    def __init__(
        self,
        app: str,
        name: str,
        limits: FanoutLimits | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.app = app
        self.name = name
        self.limits = limits or FanoutLimits()
        self.publisher: object | None = None
        """Who publishes: what the edge claimed the stream with (the publishing client's
        view, which plugins see as ``StreamView.publisher``), or None."""
        self.players: set[Player] = set()
        self.metadata: Data | None = None
        self.headers = TrackHeaders()
        """Every track's sequence header and metadata packet, for late joiners."""
        self.headers_version = 0
        self.has_video = False
        self.has_audio = False
        self.flv_base: int | None = None
        """Timestamp (ms) of the publish's first media message: FLV tags count from it."""
        self.encodes = 0
        """Chunk encodings done for fan-out (one per message per log): a measure, not a knob."""
        self._gop: list[Media | Data] = []
        self._gop_bytes = 0
        self._gop_valid = False
        self._logs: dict[tuple[int, bool, bool, bool], SharedLog] = {}
        self.dirty = False
        self.last_timestamp = 0
        self._last_flush = 0.0
        self.observer: StreamObserver | None = None
        """The worker relay's end of this stream (:mod:`fms.cluster`), or None."""
        self.taps: list[StreamTap] = []
        """Who follows the current publish's media here (HLS), dropped when it stops."""
        self.clock = clock
        """Reactor time in seconds, for the figures when a caller passes no ``now`` (None:
        the last time a caller passed)."""
        self._now = 0.0
        self.stats = StreamStats()
        """Figures of the current (or last) publish: a new one at each publish."""
        self.bytes_out_gone = 0
        """Bytes sent to players that have left (``bytes_out`` adds those still here)."""
        self.publish_query: dict[str, str] = {}
        """The query of the publish (``publish("name?k=v")``), for push name templates."""
        self.push_hops = 0
        """Pushes the publish came through (:data:`fms.apps.pushes.HOPS_KEY`); 0: an encoder's."""

    # --------------------------------------------------------------------------- publisher

    @property
    def published(self) -> bool:
        return self.publisher is not None

    @property
    def subscriber_count(self) -> int:
        """Players here and, with workers, on the other workers."""
        observer = self.observer
        return len(self.players) + (observer.remote_players if observer is not None else 0)

    def now(self, now: float | None = None) -> float:
        """``now`` if given (and remembered), else the clock's time, else the last known."""
        if now is not None:
            self._now = now
        elif self.clock is not None:
            self._now = self.clock()
        return self._now

    @property
    def bytes_out(self) -> int:
        """Bytes sent to this stream's players, those gone included."""
        return self.bytes_out_gone + sum(player.bytes_sent for player in self.players)

    def figures(self, now: float | None = None) -> dict[str, Any]:
        """:meth:`StreamStats.snapshot <fms.live.stats.StreamStats.snapshot>` at ``now``
        (default: the stream's clock), with ``bytes_out`` and ``players`` (here, and on every
        worker) added: what the HTTP API and plugins show of a stream."""
        figures = self.stats.snapshot(self.now(now))
        figures["bytes_out"] = self.bytes_out
        figures["players"] = self.subscriber_count
        figures["published"] = self.published
        return figures

    def start_publish(self, publisher: object, now: float | None = None) -> None:
        """A publisher claimed the stream: waiting players start receiving from now; the
        figures start afresh."""
        self.publisher = publisher
        self.flv_base = None
        self.stats = StreamStats(self.now(now) if now is not None or self.clock else None)
        for player in list(self.players):
            if player.state is PlayerState.WAITING:
                self._attach(player, at_head=True)
                self._tell(player, player.sink.publish_started)

    def stop_publish(self) -> None:
        """The publisher left: players are told and wait; every cache is dropped (the next
        publisher may use other codecs)."""
        self.publisher = None
        self.publish_query = {}
        self.push_hops = 0
        self.flush(self._last_flush)  # what the publisher sent last still reaches everyone
        taps, self.taps = self.taps, []
        for tap in taps:
            tap.stopped()
        for player in list(self.players):
            self._detach(player)
            player.state = PlayerState.WAITING
            self._tell(player, player.sink.publish_stopped)
        self.metadata = None
        self.headers.clear()
        self.has_video = False
        self.has_audio = False
        self.flv_base = None
        self._gop.clear()
        self._gop_bytes = 0
        self._gop_valid = False
        self._logs.clear()

    def set_metadata(self, values: tuple[Any, ...]) -> None:
        """Store ``onMetaData`` (from ``@setDataFrame``) and forward it to players.

        Metadata always travels with timestamp 0: FFmpeg's FLV reader turns an ``onMetaData``
        with any other timestamp into a spurious subtitle stream.
        """
        data = Data(values, 0, 0)
        self.metadata = data
        self.publish_message(data)

    def clear_metadata(self) -> None:
        """``@clearDataFrame``: forget the metadata (newcomers get none); the relay passes it
        on so the other workers forget it too."""
        self.metadata = None
        if self.observer is not None:
            self.observer.published(Data(("@clearDataFrame",), 0, 0), DATA_INFO)

    def publish_message(self, message: Media | Data, now: float | None = None) -> MediaInfo:
        """Update the caches with one message and append it, encoded once, to every log, and
        count it in :attr:`stats` as arrived at ``now`` (reactor seconds; default: the
        stream's clock). Returns what the message is (its header is read here, once)."""
        if isinstance(message, Media):
            info = describe(message.type_id, message.payload)
            self.last_timestamp = message.timestamp
            if self.flv_base is None:
                self.flv_base = message.timestamp
            if self.headers.update(message, info):
                self.headers_version += 1
            if message.is_video:
                self.has_video = True
                sync = info.keyframe and info.track == self.headers.main_track()
            else:
                self.has_audio = True
                sync = info.keyframe and not info.sequence_header and not self.has_video
        else:
            info = DATA_INFO
            sync = False
        self._cache_gop(message, sync, info)
        self.stats.observe(message, info, self.now(now))
        if self.observer is not None:
            self.observer.published(message, info)
        if self.taps and isinstance(message, Media):
            for tap in self.taps:
                tap.published(message, info)
        for log in self._logs.values():
            if log.wants(message):
                log.append(
                    self._encode(message, log),
                    message.timestamp,
                    sync or (not log.video and isinstance(message, Media)),
                )
        self.dirty = True
        return info

    def replay(self) -> list[Media | Data]:
        """What a newcomer that already has the metadata needs to start decoding now: the
        sequence headers and the cached GOP (from the newest keyframe), in publishing order."""
        out: list[Media | Data] = list(self.headers.messages())
        if self._gop_valid:
            out.extend(m for m in self._gop if m is not self.metadata)
        return out

    def is_cached_header(self, message: Media) -> bool:
        """Whether ``message`` is a sequence header identical to the one in force."""
        return self.headers.matches(message)

    @property
    def video_header(self) -> Media | None:
        """The main video track's sequence header (see :attr:`headers` for every track)."""
        return self.headers.config("video")

    @property
    def audio_header(self) -> Media | None:
        """The main audio track's sequence header (see :attr:`headers` for every track)."""
        return self.headers.config("audio")

    def forget_media(self) -> None:
        """Drop the GOP cache and the logs of a stream nobody plays (a relayed stream whose flow
        stops): what they hold would be stale when the flow restarts. Metadata and sequence
        headers stay."""
        if self.players:
            return
        self._gop.clear()
        self._gop_bytes = 0
        self._gop_valid = False
        self._logs.clear()

    def _cache_gop(self, message: Media | Data, sync: bool, info: MediaInfo) -> None:
        if not self.limits.gop_cache:
            return
        if sync and isinstance(message, Media) and (message.is_video or not self.has_video):
            self._gop.clear()
            self._gop_bytes = 0
            self._gop_valid = True
        if not self._gop_valid:
            return
        if info.sequence_header or (info.tagged is not None and info.tagged.role is METADATA):
            return  # replayed from the header cache
        self._gop.append(message)
        self._gop_bytes += len(message.payload) if isinstance(message, Media) else 64
        if (
            self._gop_bytes > self.limits.gop_max_bytes
            or len(self._gop) > self.limits.gop_max_frames
        ):
            self._gop.clear()
            self._gop_bytes = 0
            self._gop_valid = False

    def _encode(self, message: Media | Data, log: SharedLog) -> bytes:
        self.encodes += 1
        if log.flv:
            return self._flv_tag(message, message.timestamp)
        raw = encode_message(message)
        if raw.stream_id != log.stream_id:
            raw = RawMessage(raw.type_id, log.stream_id, raw.timestamp, raw.payload, raw.csid)
        return encode_shared(raw, self.limits.chunk_size)

    def flv_time(self, timestamp: int) -> int:
        """``timestamp`` (ms, RTMP) on the FLV time line of this publish: since its first media
        message; anything earlier (a data message sent before it) is 0."""
        delta = (timestamp - (self.flv_base or 0)) & U32_MASK
        return 0 if delta >= 1 << 31 else delta

    def _flv_tag(self, message: Media | Data, timestamp: int) -> bytes:
        if isinstance(message, Media):
            return flv.encode_tag(message.type_id, self.flv_time(timestamp), message.payload)
        payload = encode_payload(message.values)  # FLV script data is AMF0 only
        return flv.encode_tag(flv.TAG_SCRIPT, self.flv_time(timestamp), payload)

    def carries(self) -> tuple[bool, bool]:
        """(audio, video): the tracks this publish carries, as far as is known now, from the
        messages seen, the cached sequence headers and the metadata's codec ids (encoders send
        it first): what an FLV file header announces."""
        audio, video = self.has_audio, self.has_video
        values = self.metadata.values if self.metadata is not None else ()
        for value in values:
            if isinstance(value, dict):
                audio = audio or bool(value.get("audiocodecid")) or value.get("hasAudio") is True
                video = video or bool(value.get("videocodecid")) or value.get("hasVideo") is True
        audio = audio or self.headers.config("audio") is not None
        video = video or self.headers.config("video") is not None
        return audio, video

    # ----------------------------------------------------------------------------- players

    def add_player(
        self,
        sink: PlayerSink,
        stream_id: int,
        *,
        audio: bool = True,
        video: bool = True,
        flv: bool = False,
    ) -> Player:
        """A play on this stream. With a publisher, the player first gets the cached metadata
        and sequence headers, then the GOP from the newest keyframe; without one it waits.
        ``flv``: it takes FLV tags (an HTTP-FLV viewer; its sink writes the file header)."""
        player = Player(sink, stream_id, audio, video, flv)
        self.players.add(player)
        if self.published:
            self._attach(player, at_head=False)
            self._send_preamble(player)
        if self.observer is not None:
            self.observer.players_changed(self)
        return player

    def remove_player(self, player: Player) -> None:
        self._detach(player, finish=False)
        if player in self.players:
            self.players.discard(player)
            self.bytes_out_gone += player.bytes_sent
            if self.observer is not None:
                self.observer.players_changed(self)

    def set_paused(self, player: Player, paused: bool) -> None:
        """Pause stops delivery; resuming restarts at the next keyframe, after the metadata and
        sequence headers (they may have changed during the pause)."""
        if paused:
            if player.state is not PlayerState.WAITING:
                self._detach(player)
                player.state = PlayerState.PAUSED
        elif player.state is PlayerState.PAUSED:
            self._attach(player, at_head=True)
            self._park(player)
            player.headers_version = -1  # headers may have changed meanwhile: resend them

    def select(
        self, player: Player, *, audio: bool | None = None, video: bool | None = None
    ) -> None:
        """receiveAudio / receiveVideo: change what the player gets, from the next sync point,
        after the sequence headers (a player that joined without video never got its header)."""
        if audio is not None:
            player.audio = audio
        if video is not None:
            player.video = video
        if player.state in (PlayerState.ACTIVE, PlayerState.PARKED):
            self._detach(player)
            self._attach(player, at_head=True)
            self._park(player)
            player.headers_version = -1  # a kind turned on needs its header: resend them

    def _log_for(self, player: Player) -> SharedLog:
        key = (player.stream_id, player.audio, player.video, player.flv)
        log = self._logs.get(key)
        if log is None:
            log = SharedLog(*key)
            for message in self._gop:  # seed a new selection from the cached GOP
                if log.wants(message):
                    first = log.head == 0
                    log.append(self._encode(message, log), message.timestamp, first)
            self._logs[key] = log
        return log

    def _attach(self, player: Player, *, at_head: bool) -> None:
        log = self._log_for(player)
        log.players.add(player)
        player.log = log
        player.offset = 0
        player.skip_pending = False
        player.blocked_since = None
        player.headers_version = self.headers_version
        if at_head:
            player.cursor = log.head
            player.state = PlayerState.ACTIVE
        elif log.keyframe is not None and (self._gop_valid or not self.limits.gop_cache):
            player.cursor = log.keyframe
            player.state = PlayerState.ACTIVE
        elif self.has_video and player.video:
            self._park(player)
        else:
            player.cursor = log.head
            player.state = PlayerState.ACTIVE
        self.dirty = True

    def _detach(self, player: Player, *, finish: bool = True) -> None:
        """Take a player off its log; a message it got part of is finished first (``finish``),
        so its chunk stream stays whole whatever happens next."""
        log = player.log
        if log is None:
            return
        if finish:
            self._finish_entry(player, log)
        log.players.discard(player)
        player.log = None
        player.offset = 0
        player.skip_pending = False

    def _finish_entry(self, player: Player, log: SharedLog) -> None:
        """Hand over the rest of the message a player got part of (at most one message)."""
        if player.offset:
            before = player.cursor
            data, player.cursor, player.offset = log.take(
                player.cursor, player.offset, 1 << 62, True
            )
            player.messages_sent += player.cursor - before
            player.bytes_sent += len(data)
            self._tell(player, player.sink.write, data)

    def _park(self, player: Player) -> None:
        log = player.log
        assert log is not None
        self._finish_entry(player, log)
        player.cursor = log.head
        player.offset = 0
        player.skip_pending = False
        player.parked_slow = False
        player.state = PlayerState.PARKED

    def _send_preamble(self, player: Player) -> None:
        """Metadata (at time 0) and sequence headers (at the time of the player's first message)
        for one player."""
        log = player.log
        assert log is not None
        index = player.cursor - log.base
        stamp = log.stamps[index] if 0 <= index < len(log.stamps) else self.last_timestamp
        parts: list[Media | Data] = []
        if self.metadata is not None:
            parts.append(Data(self.metadata.values, player.stream_id, 0))
        for header in self.headers.messages(audio=player.audio, video=player.video):
            parts.append(Media(header.type_id, stamp, player.stream_id, header.payload))
        player.headers_version = self.headers_version
        if not parts:
            return
        if player.flv:
            data = b"".join(self._flv_tag(m, m.timestamp) for m in parts)
        else:
            data = b"".join(encode_shared(encode_message(m), self.limits.chunk_size) for m in parts)
        player.bytes_sent += len(data)
        player.messages_sent += len(parts)
        self._tell(player, player.sink.write, data)

    # ------------------------------------------------------------------------------ flush

    def flush(self, now: float) -> None:
        """Deliver what each player is missing, apply the bounds, and trim the logs."""
        for _ in self.flush_round(now):
            pass

    def flush_round(self, now: float, slice_players: int = 0) -> Iterator[None]:
        """:meth:`flush` handed over in slices: yields after every ``slice_players`` players
        (0: never), so the caller may read from publishers in between. A slice hands each of
        its players everything up to the head *at that moment*, so players late in a round get
        what arrived during it; whoever was served before a message arrived gets it next round
        (the stream is dirty again). The bounds and the trim of a log run once its round ends."""
        self.dirty = False
        self._last_flush = now
        for log in list(self._logs.values()):
            yield from self._flush_log(log, now, slice_players)

    def _flush_log(self, log: SharedLog, now: float, slice_players: int = 0) -> Iterator[None]:
        log.mark(now)
        head = log.head
        joined: dict[int, bytes] = {}
        limits = self.limits
        budget = limits.player_buffer
        countdown = slice_players
        for player in list(log.players):
            if slice_players:
                countdown -= 1
                if countdown < 0:
                    countdown = slice_players - 1
                    yield
                    log.mark(now)  # what arrived meanwhile goes to the rest of the round
                    head = log.head
                    joined = {}
            if player.log is not log:
                continue  # it left (or was dropped) while the round was under way
            if player.state is PlayerState.PARKED:
                if log.keyframe is None or log.keyframe < player.cursor:
                    continue
                if player.parked_slow:
                    player.skipped_messages += log.keyframe - player.cursor
                    player.parked_slow = False
                player.cursor = log.keyframe
                player.state = PlayerState.ACTIVE
                if player.headers_version != self.headers_version:
                    self._send_preamble(player)
                    if player.log is not log:
                        continue  # its sink failed
            if player.cursor >= head:
                player.blocked_since = None
                continue
            offer = player.offer
            if offer is not None and not player.offset and not player.skip_pending:
                # The common case, inlined (one call per player per flush, the fan-out's hot
                # path): everything it lacks in one call to its sink, if it takes it now. A
                # refusal leaves it to _deliver.
                cursor = player.cursor
                data = joined.get(cursor)
                if data is None and log.ends[-1] - log.offset(cursor) <= budget:
                    data = joined[cursor] = log.since(cursor)
                if data is not None:
                    try:
                        taken = offer(data, budget)
                    except Exception as exc:
                        if player in self.players:
                            self._drop(player, f"its sink failed: {type(exc).__name__}: {exc}")
                        continue
                    if taken:
                        player.messages_sent += head - cursor
                        player.cursor = head
                        player.bytes_sent += len(data)
                        player.blocked_since = None
                        continue
            progressed = self._deliver(player, log, joined)
            blocked_for = 0.0  # seconds since the first of the flushes in a row it took nothing
            if progressed:
                player.blocked_since = None
            elif player.blocked_since is None:
                player.blocked_since = now
            else:
                blocked_for = now - player.blocked_since
                if blocked_for > limits.stall_timeout:
                    self._drop(player, f"no write progress for {limits.stall_timeout:g}s")
                    continue
            if player.log is not log:
                continue
            if player.cursor >= head:
                player.skip_pending = False  # it caught up finishing its message: no lag left
                continue
            # Still behind: the bounds judge its cursor in the shared log. A player that has
            # taken nothing for stall_grace is judged on its lag (one flush without progress
            # means little when flushes run milliseconds apart); one that is taking a burst on
            # how long what it still lacks has waited (a fast socket drains a burst of any size
            # in a few flushes; a slow one keeps it waiting). The log's own bound is below.
            judged = progressed or blocked_for >= limits.stall_grace
            size, seconds = log.behind(player.cursor, player.offset) if judged else (0, 0.0)
            if progressed:
                seconds = log.waited(player.cursor, now)
            if size > limits.hard_bytes and not progressed:
                self._drop(player, f"{size} bytes behind (limit {limits.hard_bytes})")
            elif seconds > limits.soft_seconds or (not progressed and size > limits.soft_bytes):
                player.skip_pending = True
            if player.skip_pending and player.offset == 0:
                self._skip(player, log)
        self._bound(log)
        self._trim(log)

    def _bound(self, log: SharedLog) -> None:
        """The shared log keeps at most ``log_max_bytes`` for its players, whatever their
        cursors say: a player further behind is moved to the newest keyframe (or parked)."""
        if not log.entries or log.ends[-1] - log.offset(log.base) <= self.limits.log_max_bytes:
            return
        oldest = log.ends[-1] - self.limits.log_max_bytes
        for player in list(log.players):
            if player.state is PlayerState.ACTIVE and log.offset(player.cursor) < oldest:
                self._finish_entry(player, log)
                self._skip(player, log)

    def _deliver(self, player: Player, log: SharedLog, joined: dict[int, bytes]) -> bool:
        """Hand ``player`` what it can take now: everything from its cursor when its user-space
        buffer has room for it (players at one cursor share one joined ``bytes``), else pieces
        of at most the room left, asking again after each (a socket that takes everything
        leaves the room as it was). Whatever it cannot take stays in the log. Returns whether
        any byte was handed over."""
        sink = player.sink
        budget = self.limits.player_buffer
        progressed = False
        while player.cursor < log.head and player.log is log:
            room = budget - sink.pending() if sink.can_write() else 0
            if room <= 0:
                break
            if player.offset == 0 and not player.skip_pending:
                data = joined.get(player.cursor)
                if data is None and log.ends[-1] - log.offset(player.cursor) <= room:
                    data = joined[player.cursor] = log.since(player.cursor)
                if data is not None and len(data) <= room:
                    player.messages_sent += log.head - player.cursor
                    player.cursor = log.head
                    player.bytes_sent += len(data)
                    self._tell(player, sink.write, data)
                    return True
            before = player.cursor
            data, player.cursor, player.offset = log.take(
                player.cursor, player.offset, room, player.skip_pending
            )
            progressed = True
            player.messages_sent += player.cursor - before
            player.bytes_sent += len(data)
            self._tell(player, sink.write, data)
            if player.skip_pending and player.offset == 0:
                break  # the entry under way is done: now it may skip
        return progressed

    def _skip(self, player: Player, log: SharedLog) -> None:
        """Skip a player that fell past the soft bound to the newest keyframe, or park it until
        the next one (after the sequence headers it missed, if they changed)."""
        player.skip_pending = False
        player.skips += 1
        if log.keyframe is not None and log.keyframe > player.cursor:
            player.skipped_messages += log.keyframe - player.cursor
            player.cursor = log.keyframe
            if player.headers_version != self.headers_version:
                self._send_preamble(player)  # the headers it skipped
        else:
            behind = log.head - player.cursor  # its entry under way is finished (offset 0)
            self._park(player)
            player.skipped_messages += behind
            player.parked_slow = True

    def _tell(self, player: Player, action: Callable[..., None], *args: Any) -> None:
        """Call one player's sink. A sink that raises loses its player, never the fan-out to
        the others (the Twisted sink logs and closes on its own; this is the backstop)."""
        try:
            action(*args)
        except Exception as exc:
            if player in self.players:
                self._drop(player, f"its sink failed: {type(exc).__name__}: {exc}")

    def _drop(self, player: Player, reason: str) -> None:
        self.remove_player(player)
        try:
            player.sink.close(reason)
        except Exception:
            pass  # already removed; nothing more to do for it

    def _trim(self, log: SharedLog) -> None:
        keep = log.head
        if self.limits.gop_cache and self._gop_valid and log.keyframe is not None:
            keep = log.keyframe  # a GOP over gop_max_bytes/frames is not kept here either
        for player in log.players:
            if player.state is PlayerState.ACTIVE and player.cursor < keep:
                keep = player.cursor
        log.trim(keep)

    def memory(self) -> int:
        """Bytes held in logs and the GOP cache (for bounds tests and stats)."""
        total = self._gop_bytes
        for log in self._logs.values():
            total += sum(len(e) for e in log.entries)
        return total

    def players_in(self, states: Iterable[PlayerState]) -> int:
        wanted = set(states)
        return sum(1 for p in self.players if p.state in wanted)


__all__ = ["ChunkStreamId", "FanoutLimits", "LiveStream", "Player", "PlayerSink", "PlayerState"]
