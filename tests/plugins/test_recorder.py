"""The recorder plugin, driven through its hooks with fake client and stream views and real
``Media``/``Data`` messages: the FLV it writes, the names it chooses, and its failures."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from fms.plugins import recorder as recorder_module
from fms.plugins.recorder import Recorder, path_component
from twisted.logger import Logger, LogLevel
from zope.interface.verify import verifyObject

from fms.amf import ECMAArray, decode_values
from fms.apps.application import media_frame
from fms.apps.interfaces import IApplication
from fms.apps.loader import build
from fms.config import PluginSpec
from fms.rtmp.messages import Data, Media
from fms.vod.metadata import read_metadata
from tests.support.flv import read_tags

NOON = 1_767_268_800.0  # 2026-01-01T12:00:00Z
STAMP = "20260101T120000Z"

AVC_HEADER = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x04abcd\x01\x00\x02ef"
AAC_HEADER = b"\xaf\x00\x12\x10"


def keyframe(size: int = 100) -> bytes:
    return b"\x17\x01\x00\x00\x00" + b"k" * size


def interframe(size: int = 50) -> bytes:
    return b"\x27\x01\x00\x00\x00" + b"i" * size


def aac(size: int = 20) -> bytes:
    return b"\xaf\x01" + b"a" * size


def video(ts: int, payload: bytes) -> Media:
    return Media(9, ts, 1, payload)


def audio(ts: int, payload: bytes) -> Media:
    return Media(8, ts, 1, payload)


def metadata(**values: Any) -> Data:
    return Data(("onMetaData", ECMAArray(values)), 0, 0)


@dataclass
class FakeClient:
    id: int
    app: str = "live"
    peer: str = "127.0.0.1:50000"
    host: str = "127.0.0.1"


@dataclass
class FakeStream:
    app: str
    name: str
    publisher: FakeClient | None
    subscriber_count: int = 0
    metadata: dict[str, Any] | None = None


@dataclass
class Publish:
    """One publish driven through the hooks, as the server calls them."""

    recorder: Recorder
    client: FakeClient
    stream: FakeStream
    sent: list[Media | Data] = field(default_factory=list)

    def send(self, *messages: Media | Data) -> None:
        for message in messages:
            self.sent.append(message)
            self.recorder.media(self.stream, media_frame(message))

    def stop(self) -> None:
        self.stream.publisher = None
        self.recorder.unpublish(self.client, self.stream)


_ids = iter(range(1, 1_000_000))


def start(recorder: Recorder, name: str, kind: str = "live", app: str = "live") -> Publish:
    client = FakeClient(next(_ids), app)
    assert recorder.publish(client, name, {}, kind) is None  # type: ignore[arg-type]
    return Publish(recorder, client, FakeStream(app, name, client))


def gop(start_ts: int, frames: int = 25, step: int = 40) -> list[Media]:
    """A GOP of video (keyframe first) interleaved with audio, from ``start_ts`` (ms)."""
    out: list[Media] = []
    for i in range(frames):
        ts = start_ts + i * step
        out.append(video(ts, keyframe() if i == 0 else interframe()))
        out.append(audio(ts + 5, aac()))
    return out


def headers(ts: int = 0) -> list[Media | Data]:
    return [
        metadata(width=320.0, height=240.0, videocodecid=7.0, audiocodecid=10.0, duration=0.0),
        video(ts, AVC_HEADER),
        audio(ts, AAC_HEADER),
    ]


@dataclass(frozen=True)
class Tag:
    type_id: int
    timestamp: int
    body: bytes


def parse_flv(path: Path) -> tuple[int, list[Tag]]:
    """(header flags, tags) of an FLV file, asserting every size field on the way."""
    raw = path.read_bytes()
    assert raw[:4] == b"FLV\x01"
    assert struct.unpack(">I", raw[5:9])[0] == 9
    assert struct.unpack(">I", raw[9:13])[0] == 0  # PreviousTagSize0
    position, tags = 13, []
    while position < len(raw):
        assert position + 11 <= len(raw), "truncated tag header"
        type_id = raw[position]
        size = int.from_bytes(raw[position + 1 : position + 4], "big")
        ts = int.from_bytes(raw[position + 4 : position + 7], "big") | raw[position + 7] << 24
        assert raw[position + 8 : position + 11] == b"\x00\x00\x00"  # stream id
        body = raw[position + 11 : position + 11 + size]
        assert len(body) == size, "truncated tag body"
        end = position + 11 + size
        assert struct.unpack(">I", raw[end : end + 4])[0] == 11 + size  # PreviousTagSize
        tags.append(Tag(type_id, ts, body))
        position = end + 4
    assert position == len(raw)
    return raw[4], tags


def patched(path: Path) -> tuple[float, float]:
    """(duration s, filesize bytes) of the file's onMetaData."""
    _, tags = parse_flv(path)
    found = read_metadata(tags[0].body)
    assert found is not None
    return found["duration"], found["filesize"]


def onmetadata(tag: Tag) -> dict[str, Any]:
    values = decode_values(tag.body)
    assert values[0] == "onMetaData"
    assert isinstance(values[1], dict)
    return values[1]


def files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The recorder's log events."""
    captured: list[dict[str, Any]] = []
    logger = Logger(namespace="fms.plugins.recorder", observer=captured.append)
    monkeypatch.setattr(recorder_module, "log", logger)
    return captured


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(directory=str(tmp_path / "rec"), clock=lambda: NOON)


def record_one(recorder: Recorder, name: str = "cam", start_ts: int = 0) -> Path:
    publish = start(recorder, name)
    publish.send(*headers(start_ts), *gop(start_ts))
    publish.stop()
    (path,) = files(recorder.directory)
    return path


# --------------------------------------------------------------------------- the contract


def test_it_implements_the_plugin_contract(recorder: Recorder) -> None:
    assert verifyObject(IApplication, recorder)


def test_the_loader_builds_it_by_its_entry_point_and_creates_the_directory(
    tmp_path: Path,
) -> None:
    target = tmp_path / "a" / "b"
    plugin = build(PluginSpec("recorder", {"directory": str(target), "streams": "cam*"}))
    assert isinstance(plugin, Recorder)
    assert target.is_dir()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"streams": ""},
        {"record_types": "live"},
        {"record_types": ["live", "broadcast"]},
        {"record_types": []},
        {"max_bytes": 0},
        {"max_bytes": True},
        {"max_bytes": "1G"},
        {"max_seconds": 0},
        {"max_seconds": 1.5},
        {"budget_bytes": -1},
        {"budget_policy": "delete-newest"},
        {"index_bytes": 100},
        {"name": "../{stream}.flv"},
        {"name": "{stream}/{start}.flv"},
        {"name": "cam.flv"},
        {"name": "{stream}.mp4"},
    ],
)
def test_bad_options_stop_the_server_at_startup(tmp_path: Path, options: dict[str, Any]) -> None:
    if options:
        options = {"directory": str(tmp_path), **options}
    with pytest.raises((TypeError, ValueError)):
        Recorder(**options)


# ------------------------------------------------------------------------------ the file


def test_the_file_starts_with_an_flv_header_and_a_patchable_onmetadata(
    recorder: Recorder,
) -> None:
    path = record_one(recorder)
    assert path == recorder.directory / "live" / f"cam-{STAMP}.flv"
    flags, tags = parse_flv(path)
    assert flags == 0x05  # audio and video
    assert tags[0].type_id == 18 and tags[0].timestamp == 0
    meta = onmetadata(tags[0])
    assert list(meta)[:2] == ["duration", "filesize"]
    assert meta["width"] == 320.0 and meta["videocodecid"] == 7.0
    assert isinstance(meta, ECMAArray)


def test_tags_follow_in_order_with_the_sequence_headers_first(recorder: Recorder) -> None:
    path = record_one(recorder)
    _, tags = parse_flv(path)
    assert [(t.type_id, t.body) for t in tags[1:3]] == [(9, AVC_HEADER), (8, AAC_HEADER)]
    sent = [m for m in [*headers(), *gop(0)] if isinstance(m, Media)]
    assert [(t.type_id, t.timestamp, t.body) for t in tags[1:]] == [
        (m.type_id, m.timestamp, m.payload) for m in sent
    ]


def test_timestamps_are_rebased_to_start_the_file_at_zero(recorder: Recorder) -> None:
    path = record_one(recorder, start_ts=90_000)
    _, tags = parse_flv(path)
    media = [t for t in tags if t.type_id in (8, 9)]
    assert media[0].timestamp == 0
    assert [t.timestamp for t in media if t.type_id == 9][:4] == [0, 0, 40, 80]
    assert max(t.timestamp for t in media) == 24 * 40 + 5


def test_timestamps_rebase_across_the_32_bit_wrap(recorder: Recorder) -> None:
    publish = start(recorder, "wrap")
    first = 2**32 - 40
    publish.send(video(first, keyframe()), video(0, interframe()), video(40, interframe()))
    publish.stop()
    _, tags = parse_flv(files(recorder.directory)[0])
    assert [t.timestamp for t in tags[1:]] == [0, 40, 80]


def test_unpublish_patches_duration_and_filesize(recorder: Recorder) -> None:
    path = record_one(recorder)
    duration, filesize = patched(path)
    # the last video frame is at 960 ms, the last audio at 965 ms, both lasting 40 ms
    assert duration == pytest.approx(1.005)
    assert filesize == path.stat().st_size
    meta = onmetadata(parse_flv(path)[1][0])
    assert meta["duration"] == duration and meta["filesize"] == filesize


def test_header_flags_say_which_tracks_were_recorded(recorder: Recorder) -> None:
    publish = start(recorder, "silent")
    publish.send(*headers()[:2], *[m for m in gop(0) if m.is_video])
    publish.stop()
    flags, tags = parse_flv(files(recorder.directory)[0])
    assert flags == 0x01
    assert {t.type_id for t in tags} == {18, 9}


def test_app_stop_finishes_every_recording(recorder: Recorder) -> None:
    one, two = start(recorder, "one"), start(recorder, "two")
    for publish in (one, two):
        publish.send(*headers(), *gop(0))
    recorder.app_stop(None)  # type: ignore[arg-type]
    assert recorder.recordings == {}
    for path in files(recorder.directory):
        assert patched(path) == (pytest.approx(1.005), path.stat().st_size)


def test_data_messages_and_metadata_changes_become_script_tags_where_they_came(
    recorder: Recorder,
) -> None:
    publish = start(recorder, "cues")
    publish.send(*headers(1000), *gop(1000, frames=3))
    publish.send(Data(("onCuePoint", {"name": "goal", "time": 1.05}), 0, 1050))
    publish.send(Data(("onMetaData", ECMAArray(width=640.0, height=480.0)), 0, 1080))
    publish.stop()
    _, tags = parse_flv(files(recorder.directory)[0])
    scripts = [t for t in tags if t.type_id == 18]
    assert len(scripts) == 3
    assert onmetadata(scripts[0])["width"] == 320.0
    assert scripts[1].timestamp == 50
    assert decode_values(scripts[1].body) == ["onCuePoint", {"name": "goal", "time": 1.05}]
    assert scripts[2].timestamp == 80
    assert onmetadata(scripts[2]) == {"width": 640.0, "height": 480.0}


def test_without_metadata_messages_the_stream_views_metadata_is_used(recorder: Recorder) -> None:
    publish = start(recorder, "bare")
    publish.stream.metadata = {"width": 1280.0, "duration": 99.0}
    publish.send(*gop(0, frames=2))
    publish.stop()
    _, tags = parse_flv(files(recorder.directory)[0])
    meta = onmetadata(tags[0])
    assert meta["width"] == 1280.0
    assert meta["duration"] == pytest.approx(0.085)


# --------------------------------------------------------------------- what gets recorded


def test_only_streams_matching_the_pattern_are_recorded(tmp_path: Path) -> None:
    recorder = Recorder(directory=str(tmp_path), streams="cam*", clock=lambda: NOON)
    for name in ("cam1", "screen", "cam2/hd"):
        publish = start(recorder, name)
        publish.send(*headers(), *gop(0, frames=2))
        publish.stop()
    assert [p.name for p in files(tmp_path)] == [f"cam1-{STAMP}.flv", f"cam2%2Fhd-{STAMP}.flv"]


def test_record_types_choose_which_publish_kinds_are_recorded(tmp_path: Path) -> None:
    recorder = Recorder(directory=str(tmp_path), record_types=["record"], clock=lambda: NOON)
    for name, kind in (("a", "live"), ("b", "record"), ("c", "append")):
        publish = start(recorder, name, kind)
        publish.send(*headers(), *gop(0, frames=2))
        publish.stop()
    assert [p.name for p in files(tmp_path)] == [f"b-{STAMP}.flv"]


def test_a_kind_is_found_when_a_later_plugin_renamed_the_stream(tmp_path: Path) -> None:
    recorder = Recorder(directory=str(tmp_path), record_types=["record"], clock=lambda: NOON)
    publish = start(recorder, "alias", "record")
    publish.stream.name = "real"
    publish.send(*headers(), *gop(0, frames=2))
    publish.stop()
    assert [p.name for p in files(tmp_path)] == [f"real-{STAMP}.flv"]


def test_nothing_is_written_for_a_publish_without_frames(recorder: Recorder) -> None:
    publish = start(recorder, "empty")
    publish.send(headers()[0])
    publish.stop()
    assert files(recorder.directory) == []


# ------------------------------------------------------------------------------- files


def test_a_second_recording_in_the_same_second_gets_a_new_name(recorder: Recorder) -> None:
    record_one(recorder, "cam")
    publish = start(recorder, "cam", "record")
    publish.send(*headers(), *gop(0, frames=2))
    publish.stop()
    names = [p.name for p in files(recorder.directory)]
    assert names == [f"cam-{STAMP}-1.flv", f"cam-{STAMP}.flv"]


def test_append_continues_the_newest_file_where_it_ended(recorder: Recorder) -> None:
    first = record_one(recorder, "show")
    size_before = first.stat().st_size
    recorder.clock = lambda: NOON + 3600
    publish = start(recorder, "show", "append")
    publish.send(*headers(7000), *gop(7000, frames=5))
    publish.stop()
    assert files(recorder.directory) == [first]
    _, tags = parse_flv(first)
    assert sum(t.type_id == 18 for t in tags) == 1
    appended = [t for t in tags if t.type_id == 9][26:]
    assert [t.timestamp for t in appended] == [1005, 1005, 1045, 1085, 1125, 1165]
    duration, filesize = patched(first)
    assert duration == pytest.approx(1.005 + 0.205)
    assert filesize == first.stat().st_size > size_before


def test_append_without_a_previous_file_starts_one(recorder: Recorder) -> None:
    publish = start(recorder, "fresh", "append")
    publish.send(*headers(), *gop(0, frames=2))
    publish.stop()
    (path,) = files(recorder.directory)
    assert path.name == f"fresh-{STAMP}.flv"
    assert parse_flv(path)[1][1].timestamp == 0


def test_append_never_continues_a_file_it_did_not_write(
    recorder: Recorder, events: list[dict[str, Any]]
) -> None:
    folder = recorder.directory / "live"
    folder.mkdir()
    foreign = folder / f"show-{STAMP}.flv"
    foreign.write_bytes(b"FLV\x01\x05" + b"\x00\x00\x00\x09" + b"\x00" * 40)
    recorder.clock = lambda: NOON + 1
    publish = start(recorder, "show", "append")
    publish.send(*headers(), *gop(0, frames=2))
    publish.stop()
    assert foreign.read_bytes().endswith(b"\x00" * 40)
    assert [p.name for p in files(recorder.directory)] == [
        f"show-{STAMP}.flv",
        "show-20260101T120001Z.flv",
    ]
    assert any("cannot append" in e["log_format"] for e in events)


def test_append_refuses_a_file_with_a_truncated_last_tag(recorder: Recorder) -> None:
    first = record_one(recorder, "cut")
    with first.open("r+b") as f:
        f.truncate(first.stat().st_size - 3)
    recorder.clock = lambda: NOON + 1
    publish = start(recorder, "cut", "append")
    publish.send(*headers(), *gop(0, frames=2))
    publish.stop()
    assert len(files(recorder.directory)) == 2


def test_max_bytes_starts_a_new_file_at_a_keyframe_with_the_headers_again(
    tmp_path: Path,
) -> None:
    recorder = Recorder(directory=str(tmp_path), max_bytes=2000, clock=lambda: NOON)
    publish = start(recorder, "long")
    publish.send(*headers(), *gop(0), *gop(1000), *gop(2000))
    publish.stop()
    paths = files(tmp_path)
    assert [p.name for p in paths] == [
        f"long-{STAMP}-1.flv",
        f"long-{STAMP}-2.flv",
        f"long-{STAMP}.flv",
    ]
    for path in paths[:2]:  # the second and third files
        _, tags = parse_flv(path)
        assert onmetadata(tags[0])["width"] == 320.0
        assert [(t.type_id, t.timestamp, t.body) for t in tags[1:4]] == [
            (9, 0, AVC_HEADER),
            (8, 0, AAC_HEADER),
            (9, 0, keyframe()),
        ]
        assert patched(path) == (pytest.approx(1.005), path.stat().st_size)


def test_a_new_publisher_before_the_old_unpublish_gets_its_own_file(recorder: Recorder) -> None:
    old = start(recorder, "cam")
    old.send(*headers(), *gop(0, frames=2))
    recorder.clock = lambda: NOON + 1
    new = start(recorder, "cam")
    new.send(*headers(), *gop(0, frames=3))
    old.stop()  # late: must not end the new recording
    new.send(*gop(120, frames=1))
    new.stop()
    first, second = files(recorder.directory)
    assert patched(first)[0] == pytest.approx(0.085)
    assert patched(second)[0] == pytest.approx(0.165)


@pytest.mark.parametrize(
    ("app", "name"),
    [
        ("live", "../../etc/passwd"),
        ("live", "/etc/passwd"),
        ("live", ".."),
        ("live", "."),
        ("live", ".hidden"),
        ("live", "a/../../b"),
        ("live", "C:\\windows\\x"),
        ("live", "nul\x00byte"),
        ("live", "trailing."),
        ("live", "x" * 400),
        ("live", "%2F"),
        ("..", "cam"),
        ("/tmp", "cam"),
        ("live/../..", "cam"),
    ],
)
def test_hostile_names_never_escape_the_directory(recorder: Recorder, app: str, name: str) -> None:
    publish = start(recorder, name, app=app)
    publish.send(*headers(), *gop(0, frames=2))
    publish.stop()
    (path,) = files(recorder.directory)
    relative = path.relative_to(recorder.directory)
    assert len(relative.parts) == 2
    assert not any(part.startswith(".") for part in relative.parts)
    assert len(path.name.encode()) < 255
    assert path.resolve().is_relative_to(recorder.directory.resolve())


def test_path_components_are_one_segment_and_keep_names_apart() -> None:
    assert path_component("cam") == "cam"
    assert path_component("cam/hd") == "cam%2Fhd"
    assert path_component("cam%2Fhd") == "cam%252Fhd"
    assert path_component("..") == "%2E%2E"
    assert path_component("café live") == "café live"
    assert path_component("") == "%00"
    names = ["a/b", "a_b", "a%2Fb", "a:b", "a\\b", ".a", "%2Ea"]
    assert len({path_component(n) for n in names}) == len(names)


# ------------------------------------------------------------------------------ failures


class FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes and then fails with ENOSPC."""

    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def write(self, data: Any) -> int:
        if len(data) > self.room:
            raise OSError(28, os.strerror(28))
        self.room -= len(data)
        return len(data)


@pytest.fixture
def full_disk_for_bad(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Files whose name starts with 'bad' fill the disk after 70 kB: the placeholder
    onMetaData (64 kB of index room) fits, the disk fills in mid-recording."""
    real = recorder_module.open_new_file

    def opener(path: Path) -> BinaryIO:
        if path.name.startswith("bad"):
            return io.BufferedWriter(FullDisk(70_000), buffer_size=1024)  # type: ignore[return-value]
        return real(path)

    monkeypatch.setattr(recorder_module, "open_new_file", opener)
    yield


def test_a_write_error_stops_only_that_recording_and_is_logged_once(
    recorder: Recorder, events: list[dict[str, Any]], full_disk_for_bad: None
) -> None:
    bad, good = start(recorder, "bad"), start(recorder, "good")
    for ts in (0, 1000, 2000):
        for message in [*(headers(ts) if ts == 0 else []), *gop(ts)]:
            bad.send(message)  # never raises into the server
            good.send(message)
    bad.stop()
    good.stop()
    errors = [e for e in events if e["log_level"] >= LogLevel.error]
    assert len(errors) == 1
    assert "bad" in errors[0]["name"] and "No space" in errors[0]["error"]
    (path,) = files(recorder.directory)
    assert path.name.startswith("good")
    assert patched(path) == (pytest.approx(3.005), path.stat().st_size)


def test_a_folder_that_cannot_be_created_stops_the_recording_once(
    recorder: Recorder, events: list[dict[str, Any]]
) -> None:
    (recorder.directory / "blocked").write_bytes(b"a file where the app folder would go")
    publish = start(recorder, "cam", app="blocked")
    publish.send(*headers(), *gop(0))
    publish.stop()
    errors = [e for e in events if e["log_level"] >= LogLevel.error]
    assert len(errors) == 1
    other = start(recorder, "cam")
    other.send(*headers(), *gop(0, frames=2))
    other.stop()
    assert [p.parent.name for p in files(recorder.directory) if p.suffix == ".flv"] == ["live"]


# ---------------------------------------------------------------------- real media, ffprobe


def _ffmpeg_sample(tmp_path: Path) -> Path:
    from tests.e2e.harness import require_client

    sample = tmp_path / "sample.flv"
    command = [
        require_client("ffmpeg"), "-hide_banner", "-loglevel", "error",
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(sample),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=60)
    return sample


def test_real_h264_and_aac_tags_are_recorded_as_ffprobe_reads_them(
    recorder: Recorder, tmp_path: Path
) -> None:
    from tests.e2e.harness import require_client

    tags = read_tags(_ffmpeg_sample(tmp_path))
    publish = start(recorder, "real")
    for tag in tags:
        if tag.type_id == 18:
            values = decode_values(tag.data)
            publish.send(Data(tuple(values), 0, 0))
        else:
            publish.send(Media(tag.type_id, tag.timestamp + 5000, 1, tag.data))
    publish.stop()
    (path,) = files(recorder.directory)
    _, written = parse_flv(path)
    assert [(t.type_id, t.timestamp, t.body) for t in written[1:]] == [
        (t.type_id, t.timestamp, t.data) for t in tags[1:]
    ]
    command = [
        require_client("ffprobe"), "-v", "error", "-count_frames",
        "-show_entries", "format=duration:stream=codec_name,nb_read_frames",
        "-of", "json", str(path),
    ]  # fmt: skip
    probe = subprocess.run(command, capture_output=True, check=True, timeout=60)
    report = json.loads(probe.stdout)
    frames = {s["codec_name"]: int(s["nb_read_frames"]) for s in report["streams"]}
    assert frames["h264"] == 50
    assert frames["aac"] >= 2 * 44100 // 1024
    assert float(report["format"]["duration"]) == pytest.approx(2.0, abs=0.1)


def test_an_unknown_publish_kind_counts_as_live(tmp_path: Path) -> None:
    recorder = Recorder(directory=str(tmp_path), record_types=["live"], clock=lambda: NOON)
    publish = start(recorder, "odd", "Broadcast")
    publish.send(*headers(), *gop(0, frames=2))
    publish.stop()
    assert [p.name for p in files(tmp_path)] == [f"odd-{STAMP}.flv"]
