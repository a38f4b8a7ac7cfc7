"""What a late joiner needs before any frame: every track's decoder configuration.

Encoders send a codec's configuration (AVC/HEVC decoder configuration record, AAC
AudioSpecificConfig, Opus/FLAC headers...) once per track, and with Enhanced RTMP v2 a stream
may carry several audio and video tracks (multitrack), each with its own configuration and,
for HDR video, a Metadata packet (colorInfo) that applies until the next one. A player that
joins later gets none of these from the live flow, so the stream keeps the last of each, per
(media kind, track id, codec), and sends them all to every newcomer before its first frame.

A ManyTracks or ManyTracksManyCodecs message may configure several tracks at once; each track
is kept (and replayed) as a OneTrack message of its own, so that a later message for one track
replaces that track alone. Legacy and OneTrack messages are kept as they were published.
SequenceEnd forgets the track's configuration and metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from fms.live.media import MediaInfo
from fms.live.tracks import CONFIG, END, FRAMES, METADATA, OTHER, TaggedPayload, one_track, split
from fms.rtmp.messages import Media

Key = tuple[str, int, str]
"""(``"audio"``/``"video"``, track id, codec FourCC)."""


@dataclass(slots=True)
class _Track:
    config: Media | None = None
    metadata: Media | None = None


class TrackHeaders:
    """The last configuration and metadata of every track of one published stream."""

    def __init__(self) -> None:
        self._tracks: dict[Key, _Track] = {}
        self._main: dict[str, int] = {}
        """:meth:`main_track` per kind, until the cache changes."""

    def update(self, message: Media, info: MediaInfo) -> bool:
        """Take what ``message`` configures, replaces or ends; True when what a newcomer would
        be sent changed (an identical resend changes nothing)."""
        tagged = _tagged(message, info)
        if tagged.role is FRAMES or tagged.role is OTHER:
            return False
        self._main.clear()
        if tagged.role is END:
            changed = False
            for track in tagged.tracks:
                changed |= (
                    self._tracks.pop((tagged.kind, track.track_id, track.codec), None) is not None
                )
            return changed
        changed = False
        for key, slot, part in _parts(message, tagged):
            entry = self._tracks.setdefault(key, _Track())
            held: Media | None = getattr(entry, slot)
            if held is None or held.payload != part.payload:
                setattr(entry, slot, part)
                changed = True
        return changed

    def matches(self, message: Media) -> bool:
        """Whether ``message`` only configures tracks exactly as they already are (a relayed
        flow that restarts resends them; its players must not get them twice)."""
        tagged = split(message.type_id, message.payload)
        parts = _parts(message, tagged)
        if not parts:
            return False
        for key, slot, part in parts:
            entry = self._tracks.get(key)
            held = getattr(entry, slot) if entry is not None else None
            if held is None or held.payload != part.payload:
                return False
        return True

    def messages(self, *, audio: bool = True, video: bool = True) -> list[Media]:
        """Every track's configuration then its metadata, tracks in the order they first
        appeared; ``audio``/``video`` select the kinds (a player's receiveAudio/receiveVideo)."""
        out: list[Media] = []
        for (kind, _track_id, _codec), entry in self._tracks.items():
            if (kind == "audio" and not audio) or (kind == "video" and not video):
                continue
            for part in (entry.config, entry.metadata):
                if part is not None:
                    out.append(part)
        return out

    def main_track(self, kind: str = "video") -> int:
        """The track whose keyframes start a GOP: track 0 if it has a configuration (the
        specification recommends 0 for the default track), else the lowest configured one; 0
        when none is configured yet."""
        main = self._main.get(kind)
        if main is None:
            ids = [k[1] for k, entry in self._tracks.items() if k[0] == kind and entry.config]
            main = self._main[kind] = min(ids, default=0)
        return main

    def config(self, kind: str) -> Media | None:
        """The configuration of the main track of ``kind`` (what single-track code reads)."""
        main = self.main_track(kind)
        for (k, track_id, _codec), entry in self._tracks.items():
            if k == kind and track_id == main and entry.config is not None:
                return entry.config
        return None

    def clear(self) -> None:
        self._tracks.clear()
        self._main.clear()


def _tagged(message: Media, info: MediaInfo) -> TaggedPayload:
    if info.tagged is not None:
        return info.tagged
    return split(message.type_id, message.payload)


def _parts(message: Media, tagged: TaggedPayload) -> list[tuple[Key, str, Media]]:
    """What a configuration or metadata message holds for each of its tracks, as the message to
    replay for that track (itself when it carries one track)."""
    if tagged.role is CONFIG:
        slot = "config"
    elif tagged.role is METADATA:
        slot = "metadata"
    else:
        return []
    if len(tagged.tracks) == 1 and tagged.multitrack in (None, 0):
        track = tagged.tracks[0]
        return [((tagged.kind, track.track_id, track.codec), slot, message)]
    return [
        (
            (tagged.kind, track.track_id, track.codec),
            slot,
            Media(
                message.type_id,
                message.timestamp,
                message.stream_id,
                one_track(tagged.kind, tagged, track, message.payload),
            ),
        )
        for track in tagged.tracks
    ]
