"""What muxing one live stream for HLS costs: our own muxers or PyAV (libavformat).

The issue's decision is "use a well-kept library (PyAV's ``add_mux_stream`` muxes pre-encoded
packets without re-encoding) or write our own, by measurement". FFmpeg encodes ``--seconds`` of
testsrc2 video (H.264, ``--size`` at ``--fps`` and ``--bitrate``, a keyframe every
``--segment`` seconds) and AAC audio to FLV once (kept in ``--cache``); its tags become
:class:`fms.hls.samples.Sample` records as the server sees them; then each contender muxes
all of them into segments in memory, ``--rounds`` times, and the best round's CPU time counts:

- ``ours mpegts``: :class:`fms.hls.mpegts.TransportStreamMuxer`, one ``segment()`` per
  keyframe-aligned segment (PAT/PMT in front of each).
- ``ours fmp4``: ``fms.hls.fmp4.Fmp4Muxer`` when the module exists (init segment once, one
  fragment per segment); when it is missing the output says so. This is the hook for it.
- ``pyav mpegts`` and ``pyav fmp4``: one PyAV output container per stream writing into a
  ``BytesIO`` (format ``mpegts``, and ``mp4`` with
  ``movflags=frag_keyframe+empty_moov+default_base_moof``), streams made from the FLV's own
  streams as templates (PyAV's ``add_mux_stream`` cannot set the codec's extradata, without
  which libavformat cannot write the avcC or convert AVCC to Annex B), one ``av.Packet`` per
  sample muxed with ``mux_one``: no decoding, no encoding. One continuous container is the
  cheapest way PyAV can do it, so these figures are PyAV's lower bound; but PyAV has no flush,
  so only closing a container gives a segment's bytes exactly: the ``a container per
  segment`` rows are what HLS would cost with PyAV.

Printed per contender: µs of CPU per sample, CPU-seconds per stream-hour (CPU time scaled to
an hour of this stream), the bytes produced, and the command line that reproduces the run.

Run:  .venv/bin/python -m benchmarks.hls_mux            (PyAV: pip install av, not a dependency)
"""

from __future__ import annotations

import argparse
import io
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from fms.hls.mpegts import TransportStreamMuxer
from fms.hls.samples import Sample
from tests.hls.ts_media import Media, encode_flv, read_media

Run = Callable[[list[list[Sample]]], int]
"""Mux every segment of a stream once, from making the muxer on; returns the bytes produced."""
Contender = Callable[[Path, Media], Run]
"""Prepare a run (untimed: what a server would do once per process, not per stream)."""


def ours_mpegts(_: Path, media: Media) -> Run:
    def run(segments: list[list[Sample]]) -> int:
        muxer = TransportStreamMuxer([media.video, media.audio])
        return sum(len(muxer.segment(segment)) for segment in segments)

    return run


def ours_fmp4_or_reason() -> Contender | str:
    """The hook for our fragmented MP4 muxer: a contender when ``fms.hls.fmp4`` exists with
    the API it was written against (``Fmp4Muxer(configs)``, ``.init``, ``.fragment({(kind,
    track): samples})``), else why it is left out."""
    try:
        from fms.hls import fmp4  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return "fms/hls/fmp4.py does not exist in this checkout"
    muxer_class = getattr(fmp4, "Fmp4Muxer", None)
    if muxer_class is None:
        return "fms.hls.fmp4 has no Fmp4Muxer: adapt ours_fmp4_or_reason() to its API"

    def prepare(_: Path, media: Media) -> Run:
        def run(segments: list[list[Sample]]) -> int:
            muxer = muxer_class([media.video, media.audio])
            total = len(muxer.init)
            for segment in segments:
                runs: dict[tuple[str, int], list[Sample]] = {}
                for sample in segment:
                    runs.setdefault((sample.kind, sample.track), []).append(sample)
                total += len(muxer.fragment(runs))
            return total

        return run

    return prepare


def pyav(format_name: str, options: dict[str, str], per_segment: bool = False) -> Contender | str:
    """A PyAV contender muxing into ``format_name``, or why it is left out: one container for
    the whole stream, or (``per_segment``) one per segment, the only way PyAV gives a
    segment's exact bytes (it has no flush: ``mux_one`` queues packets to interleave them and
    only ``close`` writes out the queue). The FLV is opened and probed once, untimed, for its
    streams as templates."""
    try:
        import av
    except ImportError:
        return "PyAV is not installed (.venv/bin/pip install av)"

    def prepare(flv: Path, _: Media) -> Run:
        source = av.open(str(flv))
        templates = (source.streams.video[0], source.streams.audio[0])
        millisecond = Fraction(1, 1000)

        def mux(segments: list[list[Sample]]) -> int:
            buffer = io.BytesIO()
            out = av.open(buffer, mode="w", format=format_name, options=options)
            video = out.add_stream_from_template(templates[0])
            audio = out.add_stream_from_template(templates[1])
            for segment in segments:
                for sample in segment:
                    packet = av.Packet(sample.data)
                    packet.stream = video if sample.kind == "video" else audio
                    packet.time_base = millisecond
                    packet.dts = sample.dts
                    packet.pts = sample.dts + sample.cts
                    packet.is_keyframe = sample.keyframe
                    out.mux_one(packet)
            out.close()
            return len(buffer.getvalue())

        if per_segment:
            return lambda segments: sum(mux([segment]) for segment in segments)
        return mux

    return prepare


FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


def cut(samples: list[Sample], part_ms: int = 0) -> list[list[Sample]]:
    """Segments that start at each video keyframe (the encode puts one every segment), or with
    ``part_ms``, Low-Latency HLS parts: also cut at the first video sample ``part_ms`` or more
    after the part's start (each contender then muxes every part on its own)."""
    segments: list[list[Sample]] = []
    start = 0
    for sample in samples:
        video = sample.kind == "video"
        if not segments or (video and (sample.keyframe or 0 < part_ms <= sample.dts - start)):
            segments.append([])
            start = sample.dts
        segments[-1].append(sample)
    return segments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hls_mux")
    parser.add_argument("--seconds", type=int, default=60, help="stream length (s)")
    parser.add_argument("--bitrate", default="2500k", help="video bitrate (ffmpeg syntax)")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--segment", type=int, default=2, help="keyframe interval (s)")
    parser.add_argument("--noise", type=int, default=12, help="grain (0-100) to reach the rate")
    parser.add_argument("--part-ms", type=int, default=0, help="mux LL-HLS parts of this (ms)")
    parser.add_argument("--rounds", type=int, default=3, help="muxes per contender; best counts")
    parser.add_argument("--ffmpeg", default="ffmpeg")
    parser.add_argument("--cache", default=tempfile.gettempdir(), help="folder of the FLV")
    args = parser.parse_args(argv)
    shape = f"{args.seconds}s-{args.size}-{args.fps}-{args.bitrate}-{args.segment}-{args.noise}"
    name = f"pyfms-hls-{shape}.flv"
    flv = Path(args.cache) / name
    if not flv.exists():
        print(f"encoding {flv} once ...", flush=True)
        part = flv.with_suffix(".part.flv")
        encode_flv(
            args.ffmpeg, part, seconds=args.seconds, size=args.size, rate=args.fps,
            gop=args.fps * args.segment, video_bitrate=args.bitrate, sample_rate=48000,
            noise=args.noise,
        )  # fmt: skip
        part.rename(flv)
    media = read_media(flv)
    segments = cut(media.samples, args.part_ms)
    count = len(media.samples)
    video = sum(s.kind == "video" for s in media.samples)
    duration = (media.samples[-1].dts - media.samples[0].dts) / 1000
    payload = sum(len(s.data) for s in media.samples)
    pieces = "parts" if args.part_ms else "segments"
    print(
        f"stream: {duration:.1f} s, {video} video + {count - video} audio samples, "
        f"{payload * 8 / duration / 1e6:.2f} Mbit/s of frames, {len(segments)} {pieces}"
    )
    contenders: dict[str, Contender | str] = {
        "ours mpegts": ours_mpegts,
        "ours fmp4": ours_fmp4_or_reason(),
        "pyav mpegts": pyav("mpegts", {}),
        "pyav fmp4": pyav("mp4", FRAGMENTED),
        "pyav mpegts, a container per segment": pyav("mpegts", {}, per_segment=True),
        "pyav fmp4, a container per segment": pyav("mp4", FRAGMENTED, per_segment=True),
    }
    print(f"{'contender':<36} {'us/sample':>10} {'CPU-s/stream-hour':>18} {'bytes':>12}")
    for label, contender in contenders.items():
        if isinstance(contender, str):
            print(f"{label:<36} skipped: {contender}")
            continue
        run = contender(flv, media)
        best = float("inf")
        size = 0
        for _ in range(args.rounds):
            start = time.process_time()
            size = run(segments)
            best = min(best, time.process_time() - start)
        per_sample = best / count * 1e6
        per_hour = best / duration * 3600
        print(f"{label:<36} {per_sample:>10.1f} {per_hour:>18.1f} {size:>12}")
    print("reproduce: " + shlex.join([sys.executable, "-m", "benchmarks.hls_mux", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
