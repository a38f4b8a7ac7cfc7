"""Recordings played over RTMP, in memory: a scripted client on a fake clock plays FLV files
from an application's ``[apps.NAME.vod]`` folder (real files in a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fms.amf import encode_values
from fms.live.flv import TAG_SCRIPT, TAG_VIDEO, encode_tag, file_header
from fms.rtmp.constants import UserControlEvent
from fms.rtmp.messages import Data, UserControl
from fms.server.vod import recording_path
from tests.support.server_peer import Peer, clock_of, factory_for

AVC_CONFIG = b"\x17\x00\x00\x00\x00" + bytes.fromhex("0164001effe100046764001e01000468ee3cb0")
FRAME_MS = 40
GOP_MS = 1000


def frame(ms: int) -> bytes:
    """A video frame tag body: keyframe every GOP_MS, its time in the body to recognise it."""
    kind = b"\x17" if ms % GOP_MS == 0 else b"\x27"
    return kind + b"\x01\x00\x00\x00" + ms.to_bytes(4, "big") + bytes(200)


def write_clip(path: Path, seconds: int = 10, *, cut: int = 0) -> None:
    """An FLV file as another tool would write it (no index of ours): metadata, the AVC
    sequence header, then frames; ``cut`` bytes removed from its end."""
    meta = encode_values(["onMetaData", {"duration": float(seconds), "width": 64.0}])
    data = file_header(audio=False, video=True) + encode_tag(TAG_SCRIPT, 0, meta)
    data += encode_tag(TAG_VIDEO, 0, AVC_CONFIG)
    for ms in range(0, seconds * 1000, FRAME_MS):
        data += encode_tag(TAG_VIDEO, ms, frame(ms))
    path.write_bytes(data[: len(data) - cut] if cut else data)


def shown(peer: Peer) -> list[int]:
    """The times (ms, from their bodies) of the frames received, in order."""
    return [int.from_bytes(p[5:9], "big") for p in peer.video() if p[1] == 1]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_clip(tmp_path / "clip.flv")
    return tmp_path


def vod_factory(folder: Path):  # type: ignore[no-untyped-def]
    return factory_for(f"[apps.vod.vod]\nfolder = {str(folder)!r}\n")


def player(folder: Path, *args: object, factory=None) -> Peer:  # type: ignore[no-untyped-def]
    peer = Peer(factory or vod_factory(folder)).connect("vod", create_stream=True)
    play_args = args or ("clip", -2000.0)
    peer.send(peer.client.command("play", 3.0, None, *play_args, stream_id=1))
    return peer


@pytest.mark.parametrize("start", [-2000.0, -2.0, 0.0])
def test_a_recording_starts_with_its_headers_and_one_buffer_of_frames(
    folder: Path, start: float
) -> None:
    peer = player(folder, "clip", start)
    assert "NetStream.Play.Start" in peer.statuses()
    assert peer.video()[0] == AVC_CONFIG
    assert any(isinstance(m, Data) and m.name == "onMetaData" for m in peer.client.received)
    assert shown(peer) == list(range(0, 3001, FRAME_MS))


def test_frames_follow_in_real_time(folder: Path) -> None:
    peer = player(folder)
    factory_clock = clock_of(peer.proto.server)  # type: ignore[arg-type]
    factory_clock.advance(2.0)
    peer.pump()
    assert shown(peer)[-1] == 5000
    assert len(shown(peer)) == 5000 // FRAME_MS + 1


def test_the_end_says_complete_then_stop(folder: Path) -> None:
    peer = player(folder)
    clock = clock_of(peer.proto.server)  # type: ignore[arg-type]
    for _ in range(12):
        clock.advance(1.0)
    peer.pump()
    assert shown(peer) == list(range(0, 10_000, FRAME_MS))
    play_status = [m for m in peer.client.received if isinstance(m, Data)][-1]
    assert play_status.values[0] == "onPlayStatus"
    assert play_status.values[1]["code"] == "NetStream.Play.Complete"
    assert peer.statuses()[-1] == "NetStream.Play.Stop"
    assert any(
        isinstance(m, UserControl) and m.event == UserControlEvent.STREAM_EOF
        for m in peer.client.received
    )
    assert not peer.closed


def test_start_and_length_pick_a_part(folder: Path) -> None:
    peer = player(folder, "clip", 4500.0, 1000.0)
    clock_of(peer.proto.server).advance(5.0)  # type: ignore[arg-type]
    peer.pump()
    assert shown(peer) == list(range(4000, 5501, FRAME_MS))  # from the keyframe, to 4.5 + 1 s
    assert peer.statuses()[-1] == "NetStream.Play.Stop"


def test_seek_resumes_from_the_keyframe_before(folder: Path) -> None:
    peer = player(folder)
    before = len(shown(peer))
    peer.send(peer.client.command("seek", 0.0, None, 5300.0, stream_id=1))
    assert peer.statuses()[-2:] == ["NetStream.Seek.Notify", "NetStream.Play.Start"]
    assert shown(peer)[before:] == list(range(5000, 8001, FRAME_MS))  # a 3 s buffer ahead


def test_pause_stops_the_frames_and_unpause_resumes_them(folder: Path) -> None:
    peer = player(folder)
    clock = clock_of(peer.proto.server)  # type: ignore[arg-type]
    peer.send(peer.client.command("pause", 0.0, None, True, 0.0, stream_id=1))
    assert peer.statuses()[-1] == "NetStream.Pause.Notify"
    count = len(shown(peer))
    clock.advance(3.0)
    peer.pump()
    assert len(shown(peer)) == count
    peer.send(peer.client.command("pause", 0.0, None, False, -1.0, stream_id=1))
    assert peer.statuses()[-1] == "NetStream.Unpause.Notify"
    clock.advance(1.0)
    peer.pump()
    assert shown(peer)[count:] == list(range(3040, 4001, FRAME_MS))


def test_the_buffer_length_the_client_sets_is_how_far_ahead_it_gets(folder: Path) -> None:
    peer = Peer(vod_factory(folder)).connect("vod", create_stream=True)
    peer.send(peer.client.send(UserControl(UserControlEvent.SET_BUFFER_LENGTH, 1, 500)))
    peer.send(peer.client.command("play", 3.0, None, "clip", -2000.0, stream_id=1))
    assert shown(peer) == list(range(0, 501, FRAME_MS))


def test_get_stream_length_answers_the_duration(folder: Path) -> None:
    peer = Peer(vod_factory(folder)).connect("vod", create_stream=True)
    peer.send(peer.client.command("getStreamLength", 5.0, None, "clip"))
    answer = [c for c in peer.client.commands() if c.transaction_id == 5.0]
    assert answer[0].name == "_result"
    assert answer[0].arguments[0] == pytest.approx(10.0)  # 250 frames of 40 ms


def test_a_live_stream_of_the_same_name_has_priority(folder: Path) -> None:
    factory = vod_factory(folder)
    publisher = Peer(factory, 2000).connect("vod", create_stream=True).publish("clip")
    publisher.send_video(0, b"\x17\x00\x00\x00\x00live-config")
    peer = player(folder, factory=factory)
    assert b"live-config" in b"".join(peer.video())
    assert shown(peer) == []


@pytest.mark.parametrize("start", [-1000.0, -1.0])
def test_live_only_never_plays_the_file(folder: Path, start: float) -> None:
    peer = player(folder, "clip", start)
    assert peer.video() == []
    assert "NetStream.Play.Start" in peer.statuses()  # waits for a live publisher


@pytest.mark.parametrize("name", ["../clip", "/etc/passwd", "sub/../../clip", "cl\0ip"])
def test_names_never_leave_the_folder(tmp_path: Path, name: str) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    write_clip(tmp_path / "clip.flv")
    peer = player(inner, name.replace("\0", "%00"), -2000.0)
    assert shown(peer) == []


def test_a_damaged_file_ends_that_playback_only(folder: Path) -> None:
    data = bytearray((folder / "clip.flv").read_bytes())
    data[len(data) // 2 :] = b"\xff" * (len(data) - len(data) // 2)
    (folder / "broken.flv").write_bytes(bytes(data))
    factory = vod_factory(folder)
    broken = player(folder, "broken", -2000.0, factory=factory)
    good = player(folder, factory=factory)
    clock = clock_of(factory)
    for _ in range(12):
        clock.advance(1.0)
    broken.pump()
    good.pump()
    assert "NetStream.Play.Failed" in broken.statuses()
    assert 0 < len(shown(broken)) < len(shown(good))
    assert shown(good) == list(range(0, 10_000, FRAME_MS))
    assert not broken.closed


def test_a_truncated_file_plays_to_its_last_whole_tag(tmp_path: Path) -> None:
    write_clip(tmp_path / "cut.flv", cut=100)
    peer = player(tmp_path, "cut", -2000.0)
    clock = clock_of(peer.proto.server)  # type: ignore[arg-type]
    for _ in range(12):
        clock.advance(1.0)
    peer.pump()
    assert shown(peer) == list(range(0, 10_000 - FRAME_MS, FRAME_MS))
    assert peer.statuses()[-1] == "NetStream.Play.Stop"


def test_a_viewer_that_does_not_read_gets_nothing_more_read_for_it(folder: Path) -> None:
    peer = player(folder)
    count = len(shown(peer))
    peer.proto.pauseProducing()
    clock = clock_of(peer.proto.server)  # type: ignore[arg-type]
    for _ in range(5):
        clock.advance(1.0)
    peer.pump()
    assert len(shown(peer)) == count
    peer.proto.resumeProducing()
    clock.advance(0.1)
    peer.pump()
    assert len(shown(peer)) > count


@pytest.mark.parametrize("name", ["../clip", "/etc/passwd", "sub/../../clip", "cl\0ip", "a\\..\\b"])
def test_a_recording_path_never_leaves_its_folder(tmp_path: Path, name: str) -> None:
    """The check below the application's name rules (which refuse most of these first)."""
    inner = tmp_path / "inner"
    inner.mkdir()
    write_clip(tmp_path / "clip.flv")
    assert recording_path(inner, name) is None


def test_a_link_out_of_the_folder_is_not_followed(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    write_clip(tmp_path / "clip.flv")
    (inner / "escape.flv").symlink_to(tmp_path / "clip.flv")
    assert recording_path(inner, "escape") is None
    write_clip(inner / "show.flv")
    assert recording_path(inner, "show") == (inner / "show.flv").resolve()
    assert recording_path(inner, "flv:show.flv") == (inner / "show.flv").resolve()


def test_players_get_the_metadata_without_the_index_and_the_filler(tmp_path: Path) -> None:
    """The recorder's onMetaData carries the keyframe index and a filler that keeps room for
    it: a reader of the file needs them, a player over RTMP does not (librtmp crashes on the
    filler's size)."""
    index = {"times": [0.0, 1.0], "filepositions": [400.0, 900.0]}
    meta = encode_values(["onMetaData", {"duration": 2.0, "keyframes": index}, " " * 60000])
    data = file_header(audio=False, video=True) + encode_tag(TAG_SCRIPT, 0, meta)
    data += encode_tag(TAG_VIDEO, 0, AVC_CONFIG)
    for ms in range(0, 2000, FRAME_MS):
        data += encode_tag(TAG_VIDEO, ms, frame(ms))
    (tmp_path / "clip.flv").write_bytes(data)
    peer = player(tmp_path)
    sent = [m for m in peer.client.received if isinstance(m, Data) and m.name == "onMetaData"]
    assert [m.values for m in sent] == [("onMetaData", {"duration": 2.0})]
