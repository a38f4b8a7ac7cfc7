"""The bounds of one stream's fan-out: what each player may hold or fall behind, and the GOP
cache. Configured per application (``[apps.NAME.fanout]``/``[limits]``, ``conf/fms.toml``);
:mod:`fms.live.stream` applies them at each flush."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FanoutLimits:
    """Per-player delivery bounds and the GOP cache size; all configurable per app."""

    chunk_size: int = 4096
    """Outgoing chunk size every player uses (bytes); shared bytes depend on it."""
    soft_bytes: int = 4 * 1024 * 1024
    """Bytes behind after which a player skips to the next keyframe."""
    soft_seconds: float = 3.0
    """Media seconds behind after which a player skips to the next keyframe."""
    hard_bytes: int = 16 * 1024 * 1024
    """Bytes behind after which a player is disconnected."""
    stall_timeout: float = 10.0
    """Seconds without write progress after which a player is disconnected."""
    stall_grace: float = 0.5
    """Seconds a player may take nothing (its socket full) before its lag is judged against
    ``soft_bytes``, ``soft_seconds`` and ``hard_bytes``: a reader that pauses a moment in the
    middle of a burst is not skipped for it, however often flushes run."""
    gop_cache: bool = True
    """Keep the messages since the newest keyframe for late joiners."""
    gop_max_bytes: int = 16 * 1024 * 1024
    """A GOP larger than this is not cached (joiners then wait for the next keyframe)."""
    gop_max_frames: int = 2048
    """A GOP with more messages than this is not cached."""
    log_max_bytes: int = 64 * 1024 * 1024
    """The most the stream's shared log keeps for its players (bytes); a player further behind
    skips to the newest keyframe, however fast it is taking its backlog."""
    player_buffer: int = 256 * 1024
    """Bytes a player may hold in user space beyond what its socket took (the transport's
    buffer included): a flush hands it at most this much; the rest of its backlog stays in the
    shared log, where the soft and hard bounds judge its cursor."""
