"""Real H.264 + AAC samples for the HLS muxer tests and benchmarks: FFmpeg encodes generated
video and audio to FLV once, and the FLV tags become :class:`fms.hls.samples.Sample` records
the way the server sees them (legacy AVC and AAC tags, read with :mod:`fms.live.flv` and
:func:`fms.live.tracks.split`)."""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fms.hls.samples import Sample, TrackConfig
from fms.live import flv
from fms.live.tracks import CONFIG, FRAMES, split


@dataclass(frozen=True, slots=True)
class Media:
    """What an FLV file carried: the two track configurations and every frame in file order
    (which is decode order)."""

    video: TrackConfig
    audio: TrackConfig
    samples: list[Sample]


def encode_flv(
    ffmpeg: str,
    path: Path,
    *,
    seconds: float,
    size: str = "320x240",
    rate: int = 25,
    gop: int = 25,
    video_bitrate: str | None = None,
    sample_rate: int = 44100,
    noise: int = 0,
) -> Path:
    """Encode ``seconds`` of testsrc video (libx264, a keyframe every ``gop`` frames, B-frames
    as libx264's defaults make them) and a sine tone (AAC) to the FLV file ``path``. ``noise``
    (0-100) adds moving grain, so that a bitrate asked for is spent as a camera would spend
    it rather than on the test pattern's flat colours."""
    video = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast"]
    video += ["-x264-params", f"keyint={gop}:min-keyint={gop}:scenecut=0"]
    if noise:
        video += ["-vf", f"noise=alls={noise}:allf=t"]
    if video_bitrate:
        video += ["-b:v", video_bitrate, "-maxrate", video_bitrate, "-bufsize", video_bitrate]
    command = [ffmpeg, "-v", "error", "-y", "-nostdin"]
    command += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}"]
    command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}"]
    command += ["-t", str(seconds), *video, "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(path)]
    subprocess.run(command, check=True, timeout=600)
    return path


def read_media(path: Path) -> Media:
    """The track configurations and frames of an FLV file of legacy AVC and AAC tags. A legacy
    AVC tag's body is AVCPacketType (1 byte), the composition time (signed 24 bits, ms) and
    the data; an AAC tag's is AACPacketType (1 byte) and the data."""
    _, tags = flv.read_file(path.read_bytes())
    video: TrackConfig | None = None
    audio: TrackConfig | None = None
    samples: list[Sample] = []
    for tag in tags:
        if tag.tag_type not in (flv.TAG_AUDIO, flv.TAG_VIDEO):
            continue
        tagged = split(tag.tag_type, tag.payload)
        body = tag.payload[tagged.tracks[0].start :] if tagged.tracks else b""
        if tag.tag_type == flv.TAG_VIDEO:
            assert tagged.tracks[0].codec == "avc1"
            if tagged.role is CONFIG:
                video = TrackConfig("video", "avc1", body[4:])
            elif tagged.role is FRAMES:
                cts = int.from_bytes(body[1:4], "big", signed=True)
                samples.append(Sample("video", tag.timestamp, cts, tagged.keyframe, body[4:]))
        else:
            assert tagged.tracks[0].codec == "mp4a"
            if tagged.role is CONFIG:
                audio = TrackConfig("audio", "mp4a", body[1:])
            elif tagged.role is FRAMES:
                samples.append(Sample("audio", tag.timestamp, 0, True, body[1:]))
    assert video is not None and audio is not None, "the file lacks a sequence header"
    return Media(video, audio, samples)


def cut_at_keyframes(samples: list[Sample], count: int) -> list[list[Sample]]:
    """The samples as ``count`` segments, each starting at a video keyframe (as an HLS
    segmenter cuts them): the first ``count - 1`` segments hold one GOP each, the last the
    rest. Audio goes with the GOP whose time span it falls in."""
    starts = [i for i, s in enumerate(samples) if s.kind == "video" and s.keyframe]
    assert len(starts) >= count, f"{len(starts)} keyframes, {count} segments asked"
    bounds = [*starts[1:count], len(samples)]
    segments = [samples[: bounds[0]]]
    segments += [samples[a:b] for a, b in itertools.pairwise(bounds)]
    return segments
