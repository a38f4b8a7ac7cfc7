"""The configuration's limits as the sans-IO layers take them: ``[limits]`` into
:class:`~fms.rtmp.connection.ConnectionLimits`, ``[streams]`` (with per-app overrides) into
:class:`~fms.live.stream.FanoutLimits`. Pure functions of a :class:`~fms.config.Config`."""

from __future__ import annotations

from fms.amf import AMFLimits
from fms.config import Config
from fms.live.stream import FanoutLimits
from fms.rtmp.chunks import ChunkLimits
from fms.rtmp.connection import ConnectionLimits
from fms.rtmp.liveness import LivenessLimits


def fanout_limits(config: Config, app: str) -> FanoutLimits:
    """The per-stream delivery bounds of ``app``: ``[streams]`` with its ``[apps.APP.streams]``
    overrides."""
    streams = config.app(app).streams
    return FanoutLimits(
        chunk_size=config.streams.chunk_size,  # what every connection announced
        soft_bytes=streams.soft_bytes,
        soft_seconds=streams.soft_seconds,
        hard_bytes=streams.hard_bytes,
        stall_timeout=streams.stall_timeout,
        stall_grace=streams.stall_grace,
        gop_cache=streams.gop_cache,
        gop_max_bytes=streams.gop_max_bytes,
        gop_max_frames=streams.gop_max_frames,
        player_buffer=streams.player_buffer,
        log_max_bytes=streams.log_max_bytes,
    )


def connection_limits(config: Config) -> ConnectionLimits:
    """The sans-IO limits that the ``[limits]`` section of ``config`` describes."""
    lim = config.limits
    return ConnectionLimits(
        chunk=ChunkLimits(
            max_chunk_size=lim.max_chunk_size,
            max_command_message_size=lim.max_command_message,
            max_audio_message_size=lim.max_audio_message,
            max_video_message_size=lim.max_video_message,
            max_partial_messages=lim.max_partial_chunk_streams,
            max_buffered_bytes=lim.max_buffered_bytes,
        ),
        amf=AMFLimits(max_depth=lim.amf_max_depth, max_entries=lim.amf_max_entries),
        max_streams=lim.max_streams_per_connection,
        max_app_length=lim.max_app_name,
        max_tc_url_length=lim.max_tc_url,
        max_stream_name_length=config.streams.max_stream_name,
        min_chunk_size=lim.min_chunk_size,
        liveness=LivenessLimits(
            handshake_timeout=lim.handshake_timeout,
            connect_timeout=lim.connect_timeout,
            idle_timeout=lim.idle_timeout,
            publisher_timeout=lim.publisher_timeout,
            ping_interval=lim.ping_interval,
            ping_timeout=lim.ping_timeout,
        ),
    )
