"""The fan-out benchmark's publisher: a synthetic live stream with measurable messages.

It publishes with pyFMS's own :class:`~fms.rtmp.client.ClientConnection` over a plain socket,
in real time: ``onMetaData``, an AVC and an AAC sequence header, then video and audio frames at
the profile's rates, a keyframe every ``gop`` video frames. The frames look like FLV AVC/AAC (a
real SPS/PPS, length-prefixed NAL units, raw AAC) so that servers which parse them (nginx-rtmp
reads the SPS) treat them as they would a camera's. Each frame carries, right after its FLV
header (video: after the 4-byte NAL length and the NAL header byte too), the marker ``FMSB``, an
8-byte sequence number shared by audio and video, and the 8-byte ``CLOCK_MONOTONIC`` time in ns
read immediately before the frame is encoded and written to the socket: the players' clock is the
same, so publisher-to-player latency is an exact subtraction.

Run by :mod:`benchmarks.fanout` as a child process: it prints ``PUBLISHING`` once the server
answered ``NetStream.Publish.Start``, stops on ``Q`` (or end of input) on stdin or after
``--max-seconds``, and then writes a JSON summary (every send time, schedule slip) to ``--out``.

Run alone:  .venv/bin/python -m benchmarks.publisher --port 1935 --max-seconds 10 --out pub.json
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from fms.amf import ECMAArray
from fms.rtmp.client import (
    ClientConnection,
    ClientEvent,
    Connected,
    ConnectRejected,
    StatusReceived,
    StreamCreated,
)
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media

MAGIC = b"FMSB"
VIDEO_MARK_OFFSET = 10
"""Where the marker starts in a video message: FLV AVC header (5), NAL length (4), NAL header."""
AUDIO_MARK_OFFSET = 2
"""Where the marker starts in an audio message: after the FLV AAC header (2)."""
MARK_SIZE = 20  # marker, sequence number, send time


@dataclass(frozen=True, slots=True)
class StreamProfile:
    """What the synthetic stream sends: frames per second and message sizes (bytes)."""

    video_fps: float
    video_bytes: int
    audio_fps: float
    audio_bytes: int
    gop: int
    """Video frames from one keyframe to the next."""

    @property
    def messages_per_second(self) -> float:
        return self.video_fps + self.audio_fps

    @property
    def kbit_per_second(self) -> float:
        return (self.video_fps * self.video_bytes + self.audio_fps * self.audio_bytes) * 8 / 1000


PROFILES = {
    # The stream: 30 fps video of 2,000 B + 43 AAC frames/s of 200 B (about 550 kbit/s).
    "550k": StreamProfile(video_fps=30, video_bytes=2000, audio_fps=43, audio_bytes=200, gop=30),
    # The low-rate stream for the 19,000-player case: about 4 messages/s.
    "low": StreamProfile(video_fps=2, video_bytes=1000, audio_fps=2, audio_bytes=100, gop=2),
    # A 3 Mbit/s stream (the cluster issue's capacity question): the same 73 messages/s as
    # 550k, video frames of 12,200 B (2,997 kbit/s in all), so it differs in bytes only.
    "3m": StreamProfile(video_fps=30, video_bytes=12200, audio_fps=43, audio_bytes=200, gop=30),
}


# ------------------------------------------------------------------------ codec headers


class _BitWriter:
    """Just enough of an H.264 RBSP writer (fixed bits, Exp-Golomb) for an SPS and a PPS."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> None:
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() - 1, 0)
        self.u(code.bit_length(), code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray()
        zeros = 0
        for byte in raw:  # emulation prevention
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def _sps(width: int, height: int) -> bytes:
    """A baseline-profile, level 3.0 SPS for ``width`` x ``height`` (multiples of 16)."""
    w = _BitWriter()
    w.u(8, 66)  # profile_idc: baseline
    w.u(8, 0xC0)  # constraint_set0 and constraint_set1
    w.u(8, 30)  # level_idc
    w.ue(0)  # seq_parameter_set_id
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(2)  # pic_order_cnt_type
    w.ue(1)  # max_num_ref_frames
    w.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    w.ue(width // 16 - 1)
    w.ue(height // 16 - 1)
    w.u(1, 1)  # frame_mbs_only_flag
    w.u(1, 1)  # direct_8x8_inference_flag
    w.u(1, 0)  # frame_cropping_flag
    w.u(1, 0)  # vui_parameters_present_flag
    return b"\x67" + w.rbsp()


def _pps() -> bytes:
    w = _BitWriter()
    w.ue(0)  # pic_parameter_set_id
    w.ue(0)  # seq_parameter_set_id
    w.u(1, 0)  # entropy_coding_mode_flag (CAVLC)
    w.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    w.ue(0)  # num_slice_groups_minus1
    w.ue(0)  # num_ref_idx_l0_default_active_minus1
    w.ue(0)  # num_ref_idx_l1_default_active_minus1
    w.u(1, 0)  # weighted_pred_flag
    w.u(2, 0)  # weighted_bipred_idc
    w.se(0)  # pic_init_qp_minus26
    w.se(0)  # pic_init_qs_minus26
    w.se(0)  # chroma_qp_index_offset
    w.u(1, 1)  # deblocking_filter_control_present_flag
    w.u(1, 0)  # constrained_intra_pred_flag
    w.u(1, 0)  # redundant_pic_cnt_present_flag
    return b"\x68" + w.rbsp()


def avc_sequence_header(width: int = 640, height: int = 480) -> bytes:
    """FLV video tag body: AVC keyframe, packet type 0, an AVCDecoderConfigurationRecord."""
    sps, pps = _sps(width, height), _pps()
    record = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1])
    record += struct.pack(">H", len(sps)) + sps + b"\x01" + struct.pack(">H", len(pps)) + pps
    return b"\x17\x00\x00\x00\x00" + record


AAC_SEQUENCE_HEADER = b"\xaf\x00\x12\x10"
"""FLV audio tag body: AAC, 44.1 kHz, 16-bit stereo; AudioSpecificConfig AAC-LC 44.1 kHz 2ch."""


# ------------------------------------------------------------------------------ frames


@dataclass(frozen=True, slots=True)
class Frame:
    """One scheduled message: when (seconds after the start), what, its sequence number."""

    due: float
    video: bool
    keyframe: bool
    sequence: int


def schedule(profile: StreamProfile) -> Iterator[Frame]:
    """Video and audio frames in send order, forever (the caller stops)."""
    video = audio = 0
    sequence = 0
    while True:
        video_due = video / profile.video_fps if profile.video_fps else float("inf")
        audio_due = audio / profile.audio_fps if profile.audio_fps else float("inf")
        if video_due <= audio_due:
            yield Frame(video_due, True, video % profile.gop == 0, sequence)
            video += 1
        else:
            yield Frame(audio_due, False, False, sequence)
            audio += 1
        sequence += 1


def frame_payload(frame: Frame, profile: StreamProfile, sent_ns: int) -> bytes:
    """The FLV tag body of ``frame`` with its marker, sequence number and send time."""
    mark = MAGIC + struct.pack(">QQ", frame.sequence, sent_ns)
    if frame.video:
        size = profile.video_bytes
        head = b"\x17\x01\x00\x00\x00" if frame.keyframe else b"\x27\x01\x00\x00\x00"
        head += struct.pack(">I", size - 9) + (b"\x65" if frame.keyframe else b"\x41")
    else:
        size = profile.audio_bytes
        head = b"\xaf\x01"
    body = head + mark
    return body + b"\x00" * (size - len(body))


def metadata(profile: StreamProfile) -> tuple[object, ...]:
    return (
        "@setDataFrame",
        "onMetaData",
        ECMAArray(
            width=640.0,
            height=480.0,
            framerate=float(profile.video_fps),
            videocodecid=7.0,
            videodatarate=profile.video_fps * profile.video_bytes * 8 / 1000,
            audiocodecid=10.0,
            audiodatarate=profile.audio_fps * profile.audio_bytes * 8 / 1000,
            audiosamplerate=44100.0,
            stereo=True,
            encoder="pyFMS fan-out benchmark",
        ),
    )


# ---------------------------------------------------------------------------- publishing


class Publisher:
    """One publishing connection, driven by :meth:`run`."""

    def __init__(self, host: str, port: int, app: str, name: str, profile: StreamProfile) -> None:
        self.profile = profile
        self.name = name
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = ClientConnection(digest=False, now=time.monotonic())
        self.client.initiate()
        self.client.connect(app, f"rtmp://{host}:{port}/{app}")
        self.stream_id = 0
        self.send_ns: list[int] = []
        self.max_slip = 0.0
        self.late = 0  # messages sent more than 20 ms after they were due

    def _write(self) -> None:
        data = self.client.data_to_send()
        if data:
            self.sock.sendall(data)

    def _read(self) -> list[ClientEvent]:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the publishing connection")
        events = self.client.receive_data(data, time.monotonic())
        self._write()  # acknowledgements, ping responses
        return events

    def _wait_for(self, wanted: Callable[[ClientEvent], bool], timeout: float) -> ClientEvent:
        deadline = time.monotonic() + timeout
        self._write()
        while time.monotonic() < deadline:
            for event in self._read():
                if isinstance(event, ConnectRejected):
                    raise ConnectionError(f"connect refused: {event.code} {event.description}")
                if isinstance(event, StatusReceived) and event.level == "error":
                    raise ConnectionError(f"server refused: {event.code} {event.description}")
                if wanted(event):
                    return event
        raise TimeoutError("the server did not answer in time")

    def start(self, timeout: float = 10.0) -> None:
        """Connect, create a stream and publish; return once Publish.Start arrived."""
        self._wait_for(lambda e: isinstance(e, Connected), timeout)
        self.client.create_stream()
        created = self._wait_for(lambda e: isinstance(e, StreamCreated), timeout)
        assert isinstance(created, StreamCreated)
        self.stream_id = created.stream_id
        self.client.publish(self.stream_id, self.name)
        self._wait_for(
            lambda e: isinstance(e, StatusReceived) and e.code == "NetStream.Publish.Start",
            timeout,
        )

    def run(self, max_seconds: float, control: int | None) -> None:
        """Send the stream in real time until ``Q`` on ``control`` or ``max_seconds``."""
        profile, client, sid = self.profile, self.client, self.stream_id
        self.sock.setblocking(False)
        client.send_data(sid, metadata(profile))
        client.send_media(sid, Media(MessageType.VIDEO, 0, sid, avc_sequence_header()))
        client.send_media(sid, Media(MessageType.AUDIO, 0, sid, AAC_SEQUENCE_HEADER))
        self._send_all(client.data_to_send())
        start = time.monotonic()
        watched = [self.sock.fileno()] if control is None else [self.sock.fileno(), control]
        for frame in schedule(profile):
            if frame.due > max_seconds:
                return
            while (wait := start + frame.due - time.monotonic()) > 0:
                readable, _, _ = select.select(watched, [], [], wait)
                if control is not None and control in readable and self._stop_requested(control):
                    return
                if self.sock.fileno() in readable:
                    self._read_available()
            self.max_slip = max(self.max_slip, -wait)
            self.late += -wait > 0.020
            sent_ns = time.monotonic_ns()
            payload = frame_payload(frame, profile, sent_ns)
            kind = MessageType.VIDEO if frame.video else MessageType.AUDIO
            client.send_media(sid, Media(kind, int(frame.due * 1000), sid, payload))
            self._send_all(client.data_to_send())
            self.send_ns.append(sent_ns)

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                select.select([], [self.sock], [], 1.0)

    def _read_available(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionError("the server closed the publishing connection")
        self.client.receive_data(data, time.monotonic())
        self._send_all(self.client.data_to_send())

    @staticmethod
    def _stop_requested(control: int) -> bool:
        line = os.read(control, 4096)
        return not line or b"Q" in line

    def close(self) -> None:
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", default="live")
    parser.add_argument("--stream", default="bench")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="550k")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--out", type=Path, required=True, help="JSON summary written here")
    parser.add_argument("--no-stdin", action="store_true", help="ignore stdin (run alone)")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    publisher = Publisher(args.host, args.port, args.app, args.stream, profile)
    error = ""
    try:
        publisher.start()
        print("PUBLISHING", flush=True)
        publisher.run(args.max_seconds, None if args.no_stdin else sys.stdin.fileno())
    except (OSError, TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"publisher: {error}", file=sys.stderr)
    finally:
        publisher.close()
    summary = {
        "profile": asdict(profile),
        "sent": len(publisher.send_ns),
        "send_ns": publisher.send_ns,
        "max_slip_ms": round(publisher.max_slip * 1000, 3),
        "late_messages": publisher.late,
        "error": error,
    }
    args.out.write_text(json.dumps(summary))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
