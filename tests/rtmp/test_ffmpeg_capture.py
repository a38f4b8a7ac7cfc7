"""A real FFmpeg publish session, replayed into :class:`ServerConnection`.

``captures/ffmpeg_publish.hex`` holds the client->server bytes of one ``ffmpeg ... -f flv
rtmp://127.0.0.1:19351/live/cam`` publish (0.5 s of 64x48 H.264 at 10 fps and 8 kHz AAC),
recorded with ``scripts/record_rtmp.py``, one line per ``recv()``; its header names the FFmpeg
version and the exact command. The replay answers each event the way the server does, so the
bytes FFmpeg sent next are valid. The server's random bytes are fixed; FFmpeg's C2 echoes the
live server's S1, which the server does not verify.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from fms.rtmp import events as ev
from fms.rtmp.connection import ConnectionState, ServerConnection
from fms.rtmp.messages import Media

CAPTURE = Path(__file__).parent / "captures" / "ffmpeg_publish.hex"

PROXY_URL = "rtmp://127.0.0.1:19351/live"
"""The tcUrl FFmpeg sent: the recording proxy's address."""

E = TypeVar("E", bound=ev.Event)

ANSWERED_WITH_NULL_RESULT = frozenset({"releaseStream", "FCPublish", "FCUnpublish", "_checkbw"})


def read_capture(path: Path) -> tuple[list[str], list[bytes]]:
    """The ``#`` header lines (without ``# ``) and the segments (one hex line each)."""
    header: list[str] = []
    segments: list[bytes] = []
    for line in path.read_text(encoding="ascii").splitlines():
        if line.startswith("#"):
            header.append(line[1:].strip())
        elif line.strip():
            segments.append(bytes.fromhex(line))
    return header, segments


HEADER, SEGMENTS = read_capture(CAPTURE)
C0C1, C2 = SEGMENTS[0], SEGMENTS[1]


@dataclass(frozen=True, slots=True)
class Replay:
    """What one replay produced: every event in order, the server's output, the connection."""

    events: list[ev.Event]
    output: bytes
    server: ServerConnection


def fixed_random(size: int) -> bytes:
    return bytes(i & 0xFF for i in range(size))


def answer(server: ServerConnection, event: ev.Event) -> list[ev.Event]:
    """Answer ``event`` as the server does; return commands held during connect, now released."""
    if isinstance(event, ev.ConnectRequested):
        server.accept_connect(event)
        return server.pending_events()
    if isinstance(event, ev.CreateStreamRequested):
        server.accept_create_stream(event)
    elif isinstance(event, ev.PublishRequested):
        server.accept_publish(event.stream_id, event.name)
    elif isinstance(event, ev.CallRequested) and event.name in ANSWERED_WITH_NULL_RESULT:
        server.send_result(event.command.transaction_id)
    elif isinstance(event, ev.DeleteStreamRequested):
        server.delete_stream(event.stream_id)
    return []


def replay(pieces: Iterable[bytes]) -> Replay:
    """Feed ``pieces`` in order, answering every event before the next piece arrives."""
    server = ServerConnection(random_bytes=fixed_random)
    events: list[ev.Event] = []
    output: list[bytes] = []
    for piece in pieces:
        queue = server.receive_data(piece)
        while queue:
            event = queue.pop(0)
            events.append(event)
            queue.extend(answer(server, event))
        output.append(server.data_to_send())
    return Replay(events, b"".join(output), server)


RECORDED = replay(SEGMENTS)


def of_type(kind: type[E]) -> list[E]:
    return [e for e in RECORDED.events if isinstance(e, kind)]


def media(type_id: int) -> list[Media]:
    return [e.message for e in of_type(ev.MediaReceived) if e.message.type_id == type_id]


def video() -> list[Media]:
    return media(9)


def audio() -> list[Media]:
    return media(8)


def command_name(event: ev.Event) -> str | None:
    """The RTMP command behind an event (None for media, data and control events)."""
    names: dict[type[ev.Event], str] = {
        ev.ConnectRequested: "connect",
        ev.CreateStreamRequested: "createStream",
        ev.PublishRequested: "publish",
        ev.DeleteStreamRequested: "deleteStream",
    }
    if isinstance(event, ev.CallRequested):
        return event.name
    return names.get(type(event))


def test_capture_header_names_the_ffmpeg_version_command_and_recorder() -> None:
    text = "\n".join(HEADER)
    assert "ffmpeg version " in text
    assert "-f flv rtmp://127.0.0.1:19351/live/cam" in text
    assert "scripts/record_rtmp.py" in text


def test_capture_is_small() -> None:
    """A few KB: the test data stays readable in review."""
    assert sum(len(s) for s in SEGMENTS) < 10_000


def test_handshake_is_an_fp9_digest_one_completed_by_c2() -> None:
    server = ServerConnection(random_bytes=fixed_random)
    assert server.receive_data(C0C1) == []
    assert server.receive_data(C2) == [ev.HandshakeCompleted(digest=True)]
    assert RECORDED.events[0] == ev.HandshakeCompleted(digest=True)


def test_connect_carries_app_flashver_tcurl_and_type() -> None:
    (connect,) = of_type(ev.ConnectRequested)
    assert connect.transaction_id == 1.0
    assert connect.app == "live"
    assert connect.flash_ver.startswith("FMLE/3.0 (compatible; Lavf")
    assert connect.tc_url == PROXY_URL
    assert connect.command_object["type"] == "nonprivate"
    assert connect.object_encoding == 0
    assert connect.query == {}


def test_ffmpeg_raises_its_chunk_size_to_4096_right_after_connect() -> None:
    kinds = [type(e) for e in RECORDED.events]
    index = kinds.index(ev.ConnectRequested)
    assert RECORDED.events[index + 1] == ev.PeerChunkSizeChanged(4096)
    assert of_type(ev.PeerChunkSizeChanged) == [ev.PeerChunkSizeChanged(4096)]


def test_commands_arrive_in_ffmpegs_publish_order() -> None:
    names = [n for n in map(command_name, RECORDED.events) if n is not None]
    assert names == [
        "connect",
        "releaseStream",
        "FCPublish",
        "createStream",
        "_checkbw",
        "publish",
        "FCUnpublish",
        "deleteStream",
    ]


def test_release_stream_and_fcpublish_name_the_stream() -> None:
    calls = {e.name: e.command for e in of_type(ev.CallRequested)}
    assert calls["releaseStream"].arguments == ("cam",)
    assert calls["FCPublish"].arguments == ("cam",)


def test_publish_is_live_cam_on_the_stream_we_created() -> None:
    (publish,) = of_type(ev.PublishRequested)
    assert publish.stream_id == 1
    assert (publish.name, publish.publish_type, publish.query) == ("cam", "live", {})


def test_metadata_is_set_data_frame_on_metadata_with_size_and_codecs() -> None:
    (data,) = of_type(ev.DataReceived)
    assert data.stream_id == 1
    name, handler, metadata = data.message.values
    assert (name, handler) == ("@setDataFrame", "onMetaData")
    assert metadata["width"] == 64 and metadata["height"] == 48
    assert metadata["videocodecid"] == 7  # AVC
    assert metadata["audiocodecid"] == 10  # AAC
    assert metadata["framerate"] == 10
    assert metadata["audiosamplerate"] == 8000


def test_metadata_comes_before_any_media() -> None:
    kinds = [type(e) for e in RECORDED.events]
    assert kinds.index(ev.DataReceived) < kinds.index(ev.MediaReceived)


def test_first_video_message_is_an_avc_sequence_header() -> None:
    first = video()[0].payload
    assert first[0] == 0x17  # keyframe, codec 7 (AVC)
    assert first[1] == 0  # AVCPacketType: sequence header
    assert first[5] == 1  # AVCDecoderConfigurationRecord.configurationVersion
    assert first[6] == 66  # Baseline profile (x264 -preset ultrafast)


def test_first_audio_message_is_an_aac_sequence_header() -> None:
    first = audio()[0].payload
    assert first[0] >> 4 == 10  # AAC
    assert first[1] == 0  # AACPacketType: sequence header
    config = int.from_bytes(first[2:4], "big")
    assert config >> 11 == 2  # audio object type: AAC LC
    assert (config >> 7) & 0xF == 11  # sampling frequency index: 8000 Hz
    assert (config >> 3) & 0xF == 1  # one channel


def test_five_video_frames_starting_with_a_keyframe_then_end_of_sequence() -> None:
    messages = video()
    frames = [m for m in messages if m.payload[1] == 1]
    assert len(frames) == 5  # 0.5 s at 10 fps
    assert frames[0].payload[0] == 0x17
    assert all(f.payload[0] == 0x27 for f in frames[1:])  # inter frames (-g 5: one GOP)
    assert messages[-1].payload[:2] == b"\x17\x02"  # AVC end of sequence


def test_five_aac_frames_follow_the_sequence_header() -> None:
    frames = [m for m in audio() if m.payload[1] == 1]
    assert len(frames) == 5
    assert len(audio()) == 1 + len(frames)


def test_timestamps_never_decrease_per_media_type() -> None:
    for messages in (video(), audio()):
        stamps = [m.timestamp for m in messages]
        assert stamps == sorted(stamps)


def test_frames_are_spaced_100_ms_for_video_and_128_ms_for_audio() -> None:
    """10 fps, and 1024 AAC samples at 8 kHz; FFmpeg shifts video by the AAC priming delay."""
    video_stamps = [m.timestamp for m in video() if m.payload[1] == 1]
    audio_stamps = [m.timestamp for m in audio() if m.payload[1] == 1]
    assert video_stamps == [128, 228, 328, 428, 528]
    assert audio_stamps == [0, 128, 256, 384, 512]


def test_all_media_is_reported_on_the_published_stream_and_none_dropped() -> None:
    assert {e.stream_id for e in of_type(ev.MediaReceived)} == {1}
    assert RECORDED.server.dropped_messages == 0


def test_session_ends_with_fcunpublish_then_delete_stream() -> None:
    *_, unpublish, delete = RECORDED.events
    assert isinstance(unpublish, ev.CallRequested)
    assert unpublish.name == "FCUnpublish" and unpublish.command.arguments == ("cam",)
    assert delete == ev.DeleteStreamRequested(1)
    assert RECORDED.server.state is ConnectionState.CONNECTED
    assert RECORDED.server.streams == {}


def test_bytes_fed_one_at_a_time_give_the_same_events() -> None:
    data = b"".join(SEGMENTS)
    one_by_one = replay(data[i : i + 1] for i in range(len(data)))
    assert one_by_one.events == RECORDED.events


def test_bytes_fed_one_at_a_time_give_the_same_answers() -> None:
    data = b"".join(SEGMENTS)
    one_by_one = replay(data[i : i + 1] for i in range(len(data)))
    assert one_by_one.output == RECORDED.output


@pytest.mark.parametrize("index", range(2, len(SEGMENTS)))
def test_every_split_point_of_a_segment_gives_the_same_events(index: int) -> None:
    """Each segment after the handshake, cut in two at every byte."""
    before, segment, after = SEGMENTS[:index], SEGMENTS[index], SEGMENTS[index + 1 :]
    for cut in range(1, len(segment)):
        pieces = [*before, segment[:cut], segment[cut:], *after]
        assert replay(pieces).events == RECORDED.events, f"segment {index} cut at {cut}"


@pytest.mark.parametrize("index", [0, 1])
def test_handshake_segments_cut_after_c0_and_every_7_bytes_give_the_same_events(index: int) -> None:
    """C0+C1 and C2 each cut in two: after the first byte, then every 7th."""
    segment = SEGMENTS[index]
    for cut in [1, *range(2, len(segment), 7)]:
        pieces = [*SEGMENTS[:index], segment[:cut], segment[cut:], *SEGMENTS[index + 1 :]]
        assert replay(pieces).events == RECORDED.events, f"segment {index} cut at {cut}"
