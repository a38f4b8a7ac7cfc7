"""What muxing a live stream into HLS costs, per message, with our fMP4 muxer, and with PyAV
(FFmpeg's mov muxer through its Python bindings) for comparison when it is installed.

The stream is a real one: Debian's FFmpeg encodes ``--seconds`` of 640x360 H.264 at 25 fps
(480 kbit/s, a keyframe every 2 s) and 64 kbit/s AAC into FLV: about 550 kbit/s, the issue's
reference stream. Its tags are then fed ``--passes`` times, as the server would feed a
published stream's messages:

- ``ours``: :class:`fms.hls.segmenter.StreamSegments` whole (FLV payload -> samples -> 2 s
  segments of fragmented MP4, the playlist window kept);
- ``ours, muxer only``: :class:`fms.hls.fmp4.Fmp4Muxer` given the samples of each segment
  (what the muxer adds over reading the payloads);
- ``PyAV``: the same samples wrapped in ``av.Packet`` and muxed by FFmpeg's mp4 muxer into
  fragmented MP4 in memory (``frag_keyframe+empty_moov+default_base_moof``).

Figures are CPU time (``time.process_time``) divided by the messages fed; "share of a core"
is that cost times the stream's message rate. Nothing here fails on a slow machine.

Run:  .venv/bin/python -m benchmarks.hls_segmenter
      .venv/bin/python -m benchmarks.hls_segmenter --seconds 10 --passes 2   # a quick look
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from fms.hls.fmp4 import Fmp4Muxer
from fms.hls.samples import Kind, Sample, TrackConfig
from fms.hls.segmenter import SegmentSettings, StreamSegments
from fms.hls.source import read_message
from fms.live.flv import read_file


def make_stream(seconds: int, folder: Path) -> list[tuple[int, int, bytes]]:
    """(type, timestamp ms, payload) of every audio/video tag of a fresh ~550 kbit/s FLV
    (written to ``folder/stream.flv``)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("ffmpeg is needed (apt-get install ffmpeg)")
    path = folder / "stream.flv"
    subprocess.run(
        [ffmpeg, "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-b:v", "480k",
         "-maxrate", "480k", "-bufsize", "960k", "-g", "50", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(path)],
        check=True,
    )  # fmt: skip
    _, tags = read_file(path.read_bytes())
    return [(t.tag_type, t.timestamp, t.payload) for t in tags if t.tag_type in (8, 9)]


def run_segmenter(tags: list[tuple[int, int, bytes]], passes: int) -> tuple[float, int, int]:
    """CPU seconds, messages fed, segments made."""
    made = 0
    span = tags[-1][1] + 1000
    started = time.process_time()
    hls = StreamSegments(SegmentSettings())
    for n in range(passes):
        hls.start()
        offset = n * span
        for type_id, timestamp, payload in tags:
            if hls.publish(type_id, timestamp + offset, payload, 0.0) is not None:
                made += 1
        if hls.stop() is not None:
            made += 1
    return time.process_time() - started, len(tags) * passes, made


def samples_by_segment(
    tags: list[tuple[int, int, bytes]],
) -> tuple[list[TrackConfig], list[list[Sample]]]:
    """The stream's configurations and its samples grouped from keyframe to keyframe."""
    configs: dict[str, TrackConfig] = {}
    groups: list[list[Sample]] = []
    for type_id, timestamp, payload in tags:
        for item in read_message(type_id, timestamp, payload):
            if isinstance(item, TrackConfig):
                configs[item.kind] = item
            elif (item.kind == "video" and item.keyframe) or not groups:
                groups.append([item])
            else:
                groups[-1].append(item)
    return list(configs.values()), groups


def run_muxer(
    configs: list[TrackConfig], groups: list[list[Sample]], passes: int
) -> tuple[float, int]:
    """CPU seconds and bytes of one pass's output (init and fragments)."""
    written = 0
    started = time.process_time()
    for _ in range(passes):
        muxer = Fmp4Muxer(configs)
        written = len(muxer.init)
        for group in groups:
            runs: dict[tuple[Kind, int], list[Sample]] = {}
            for sample in group:
                runs.setdefault((sample.kind, sample.track), []).append(sample)
            written += len(muxer.fragment(runs))
    return time.process_time() - started, written


def run_pyav(flv: Path, groups: list[list[Sample]], passes: int) -> tuple[float, int] | None:
    """CPU seconds PyAV takes to mux the samples into fragmented MP4 in memory, and the bytes
    it wrote (a check that it muxed everything); None without PyAV. The output streams take
    their codec parameters from the FLV file as PyAV reads it (what a server would build from
    the sequence headers), the packets are made from our samples."""
    try:
        import av
    except ImportError:
        return None
    samples = [s for group in groups for s in group]
    source: Any = av.open(str(flv))
    templates = {s.type: s for s in source.streams}
    written = 0
    started = time.process_time()
    for _ in range(passes):
        buffer = io.BytesIO()
        output: Any = av.open(
            buffer, "w", format="mp4",
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
        )  # fmt: skip
        v = output.add_stream_from_template(templates["video"])
        a = output.add_stream_from_template(templates["audio"])
        for sample in samples:
            packet = av.Packet(sample.data)
            packet.stream = v if sample.kind == "video" else a
            packet.time_base = Fraction(1, 1000)
            packet.dts = sample.dts
            packet.pts = sample.dts + sample.cts
            packet.is_keyframe = sample.keyframe
            output.mux(packet)
        output.close()
        written = len(buffer.getvalue())
    cpu = time.process_time() - started
    source.close()
    return cpu, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="stream length (s)")
    parser.add_argument("--passes", type=int, default=5, help="times the stream is fed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tags = make_stream(args.seconds, Path(folder))
        report(args, tags, Path(folder) / "stream.flv")


def report(args: argparse.Namespace, tags: list[tuple[int, int, bytes]], flv: Path) -> None:
    rate = len(tags) / args.seconds
    kbits = sum(len(p) for _, _, p in tags) * 8 / args.seconds / 1000
    command = " ".join([".venv/bin/python -m benchmarks.hls_segmenter", *sys.argv[1:]])
    print(f"command: {command}  (python {sys.version.split()[0]})")
    print(f"stream: {args.seconds} s, {len(tags)} messages ({rate:.1f}/s), {kbits:.0f} kbit/s")
    cpu, messages, made = run_segmenter(tags, args.passes)
    per = cpu / messages * 1e6
    print(
        f"ours (segmenter whole): {per:.1f} us per message, {made} segments;"
        f" {per * rate / 1e4:.3f}% of a core per stream,"
        f" {1e6 / (per * rate):.0f} such streams per core"
    )
    configs, groups = samples_by_segment(tags)
    count = sum(len(g) for g in groups) * args.passes
    muxer, written = run_muxer(configs, groups, args.passes)
    print(f"ours (muxer only): {muxer / count * 1e6:.1f} us per sample, {written} bytes out")
    pyav = run_pyav(flv, groups, args.passes)
    if pyav is None:
        print("PyAV: not installed (pip install av) - no comparison")
    else:
        print(
            f"PyAV {av_version()} (mp4 muxer, fragmented):"
            f" {pyav[0] / count * 1e6:.1f} us per sample, {pyav[1]} bytes out"
        )


def av_version() -> str:
    import av

    return str(av.__version__)


if __name__ == "__main__":
    main()
