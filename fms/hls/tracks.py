"""Which tracks of a stream HLS carries: its main video track and its main audio track.

An Enhanced RTMP multitrack stream (OBS 30.2+ sending several encodings, FFmpeg 9 mapping
several video or audio inputs) has up to 256 tracks of each kind, told apart by a track id;
a legacy stream has one of each, id 0. An HLS media playlist is one rendition: players
(hls.js, Safari, FFmpeg's HLS demuxer) show one video and one audio track of a segment, and
hls.js reads only the first of each. So HLS carries the *main* tracks, the lowest track id of
each kind (0 when present: the track every Enhanced RTMP player without multitrack support
gets), the same track whose keyframes cut the segments (:mod:`fms.hls.segmenter`); the other
tracks are left out of both containers. Offering every track as a rendition of its own (a
multivariant playlist with one media playlist per track) is possible later; the RTMP and
HTTP-FLV players get every track today. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable

from fms.hls.samples import TrackConfig


def main_tracks(configs: Iterable[TrackConfig]) -> list[TrackConfig]:
    """The configuration of the lowest track id of each kind, video first."""
    chosen: dict[str, TrackConfig] = {}
    for config in configs:
        known = chosen.get(config.kind)
        if known is None or config.track < known.track:
            chosen[config.kind] = config
    return [chosen[kind] for kind in ("video", "audio") if kind in chosen]


__all__ = ["main_tracks"]
