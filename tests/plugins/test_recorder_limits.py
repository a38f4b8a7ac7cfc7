"""The recorder's files over time: rotation by duration, every track's headers at the start of
each file (Enhanced RTMP and multitrack included), the keyframe index, the disk budget, and the
repair of recordings a crash interrupted."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fms.plugins.recorder import Recorder
from twisted.logger import LogLevel

from fms.rtmp.messages import Media
from fms.vod.metadata import keyframes_of, read_metadata
from fms.vod.reader import index_file, iter_tags
from tests.plugins.test_recorder import (
    NOON,
    events,
    files,
    gop,
    headers,
    parse_flv,
    start,
)

__all__ = ["events"]

HEVC_HEADER = b"\x90hvc1" + b"hevc-config"
OPUS_HEADER = b"\x90Opus" + b"OpusHead"


def hevc_gop(start_ts: int, frames: int = 25) -> list[Media]:
    out = []
    for i in range(frames):
        ts = start_ts + i * 40
        out.append(Media(9, ts, 1, (b"\x93hvc1" if i else b"\x91hvc1\x00\x00\x00") + b"f" * 40))
        out.append(Media(8, ts, 1, b"\x91Opus" + b"o" * 20))
    return out


def metadata_of(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    first = next(iter_tags(lambda at, size: data[at : at + size]))
    found = read_metadata(first.body)
    assert found is not None
    return found


def test_max_seconds_starts_a_new_file_each_period_with_every_header_first(tmp_path: Path) -> None:
    clock = iter(range(int(NOON), int(NOON) + 100))
    recorder = Recorder(directory=tmp_path, max_seconds=1, clock=lambda: float(next(clock)))
    publish = start(recorder, "cam")
    publish.send(*headers(), *gop(0), *gop(1000), *gop(2000))
    publish.stop()
    paths = files(tmp_path)
    assert len(paths) == 3
    for path in paths:
        _, tags = parse_flv(path)
        assert [(t.type_id, t.timestamp) for t in tags[1:4]] == [(9, 0), (8, 0), (9, 0)]
        assert tags[3].body[0] == 0x17  # the keyframe that started the file
        assert metadata_of(path)["duration"] == pytest.approx(1.005)
        assert metadata_of(path)["indexed"] is True


def test_a_rotated_file_of_an_enhanced_stream_starts_with_its_fourcc_headers(
    tmp_path: Path,
) -> None:
    recorder = Recorder(directory=tmp_path, max_seconds=1, clock=lambda: NOON)
    publish = start(recorder, "hevc")
    publish.send(Media(9, 0, 1, HEVC_HEADER), Media(8, 0, 1, OPUS_HEADER), *hevc_gop(0))
    publish.send(*hevc_gop(1000))
    publish.stop()
    second = next(p for p in files(tmp_path) if p.name.endswith("-1.flv"))
    _, tags = parse_flv(second)
    assert [t.body for t in tags[1:3]] == [HEVC_HEADER, OPUS_HEADER]
    assert tags[3].body.startswith(b"\x91hvc1")
    found = metadata_of(second)
    assert found["videocodecid"] == int.from_bytes(b"hvc1", "big")
    assert found["audiocodecid"] == int.from_bytes(b"Opus", "big")


def test_a_rotated_multitrack_file_gets_one_header_per_track(tmp_path: Path) -> None:
    """A ManyTracks SequenceStart configures two tracks; the next file gets each as its own
    OneTrack header (what a late joiner gets too)."""
    recorder = Recorder(directory=tmp_path, max_seconds=1, clock=lambda: NOON)
    publish = start(recorder, "multi")
    configs = b"".join(bytes((i,)) + (4).to_bytes(3, "big") + b"cfg" + bytes((i,)) for i in (0, 1))
    publish.send(Media(9, 0, 1, b"\x96\x10avc1" + configs), *hevc_gop(0), *hevc_gop(1000))
    publish.stop()
    second = next(p for p in files(tmp_path) if p.name.endswith("-1.flv"))
    _, tags = parse_flv(second)
    assert [t.body for t in tags[1:3]] == [b"\x96\x00avc1\x00cfg\x00", b"\x96\x00avc1\x01cfg\x01"]


def test_the_keyframe_index_points_at_the_video_keyframe_tags(tmp_path: Path) -> None:
    recorder = Recorder(directory=tmp_path, clock=lambda: NOON)
    publish = start(recorder, "cam")
    publish.send(*headers(), *gop(0), *gop(1000), *gop(2000))
    publish.stop()
    (path,) = files(tmp_path)
    data = path.read_bytes()
    tags = list(iter_tags(lambda at, size: data[at : at + size]))
    keyframes = [
        (t.timestamp, t.offset) for t in tags if t.tag_type == 9 and t.body[:2] == b"\x17\x01"
    ]
    assert (
        keyframes_of(metadata_of(path))
        == keyframes
        == [(0, keyframes[0][1]), (1000, keyframes[1][1]), (2000, keyframes[2][1])]
    )


def big_gop(start_ts: int) -> list[Media]:
    """A GOP whose frames (8 kB) outgrow the room made when a file starts, and stay in the
    write buffer (256 kB) until the file closes."""
    frames = [(b"\x17" if i == 0 else b"\x27") + b"\x01" + bytes(8_000) for i in range(25)]
    return [Media(9, start_ts + i * 40, 1, frame) for i, frame in enumerate(frames)]


@pytest.mark.parametrize("group", [gop, big_gop])
def test_delete_oldest_keeps_the_apps_recordings_within_the_budget(
    tmp_path: Path,
    events: list[dict[str, Any]],
    group: Any,
) -> None:
    """Also when a file grows past the budget between two file starts, while its bytes are
    still in the write buffer and not yet on disk."""
    clock = iter(range(int(NOON), int(NOON) + 100))
    options = {"max_seconds": 1, "index_bytes": 1024, "clock": lambda: float(next(clock))}
    probe = Recorder(directory=tmp_path / "probe", **options)
    publish = start(probe, "cam")
    publish.send(*headers(), *group(0), *group(1000))
    publish.stop()
    one_file = max(p.stat().st_size for p in files(tmp_path / "probe"))
    budget = 2 * one_file + one_file // 2  # room for two files and a half
    recorder = Recorder(directory=tmp_path / "rec", budget_bytes=budget, **options)
    publish = start(recorder, "cam")
    publish.send(*headers(), *[m for ts in range(0, 5000, 1000) for m in group(ts)])
    publish.stop()
    kept = files(tmp_path / "rec")
    assert sum(p.stat().st_size for p in kept) <= budget
    assert len(kept) == 2
    assert sorted(round(metadata_of(p)["duration"]) for p in kept) == [1, 1]
    deleted = [e for e in events if "deleted" in e["log_format"]]
    assert len(deleted) == 3
    assert all(metadata_of(p)["indexed"] for p in kept)


def test_refuse_stops_the_recording_at_the_budget_with_one_error_and_a_finished_file(
    tmp_path: Path,
    events: list[dict[str, Any]],
) -> None:
    recorder = Recorder(
        directory=tmp_path, budget_bytes=12_000, budget_policy="refuse", index_bytes=1024,
        clock=lambda: NOON,
    )  # fmt: skip
    publish = start(recorder, "cam")
    publish.send(*headers(), *[m for ts in range(0, 10_000, 1000) for m in gop(ts)])
    publish.stop()
    (path,) = files(tmp_path)
    assert 10_000 < path.stat().st_size <= 12_000
    errors = [e for e in events if e["log_level"] >= LogLevel.error]
    assert len(errors) == 1 and "budget" in errors[0]["error"]
    found = index_file(lambda at, size: path.read_bytes()[at : at + size])
    assert found.indexed and found.damage is None and found.end == path.stat().st_size


def crashed_copy(tmp_path: Path) -> tuple[Path, int]:
    """A recording copied while it was being written (as a SIGKILL leaves it: no final
    onMetaData, a partial last tag), and the size of its complete tags."""
    recorder = Recorder(directory=tmp_path / "live-rec", index_bytes=4096, clock=lambda: NOON)
    publish = start(recorder, "cam")
    publish.send(*headers(), *gop(0), *gop(1000))
    rec = recorder.recordings[("live", "cam")]
    assert rec.flv is not None
    rec.flv.file.flush()
    complete = rec.flv.size
    target = tmp_path / "rec" / "live" / "cam-crashed.flv"
    target.parent.mkdir(parents=True)
    shutil.copyfile(rec.flv.path, target)
    with open(target, "ab") as file:
        file.write(b"\x09\x00\x01\x00" + bytes(20))  # a video tag cut short
    publish.stop()
    return target, complete


def test_app_start_repairs_an_interrupted_recording(
    tmp_path: Path,
    events: list[dict[str, Any]],
) -> None:
    path, complete = crashed_copy(tmp_path)
    assert metadata_of(path)["indexed"] is False and metadata_of(path)["duration"] == 0
    recorder = Recorder(directory=tmp_path / "rec", clock=lambda: NOON)
    recorder.repair_in_thread = False
    recorder.app_start(type("App", (), {"name": "live"})())  # type: ignore[arg-type]
    assert path.stat().st_size == complete
    found = metadata_of(path)
    assert found["indexed"] is True and found["duration"] == pytest.approx(2.005)
    assert found["filesize"] == complete
    assert [t for t, _ in keyframes_of(found)] == [0, 1000]
    assert len([e for e in events if "repaired" in e["log_format"]]) == 1


def test_a_recording_being_written_is_not_repaired(tmp_path: Path) -> None:
    recorder = Recorder(directory=tmp_path, clock=lambda: NOON)
    publish = start(recorder, "cam")
    publish.send(*headers(), *gop(0))
    (path,) = files(tmp_path)
    recorder.recordings[("live", "cam")].flv.file.flush()  # type: ignore[union-attr]
    before = path.read_bytes()
    Recorder(directory=tmp_path, clock=lambda: NOON).repair_folders("live")
    assert path.read_bytes() == before
    publish.stop()
    assert metadata_of(path)["indexed"] is True


def test_the_name_template_names_the_file(tmp_path: Path) -> None:
    recorder = Recorder(
        directory=tmp_path, name="{stream}-{start:%Y%m%d-%H%M%S}.flv", clock=lambda: NOON
    )
    publish = start(recorder, "../cam")
    publish.send(*headers(), *gop(0))
    publish.stop()
    assert [p.relative_to(tmp_path).as_posix() for p in files(tmp_path)] == [
        "live/%2E.%2Fcam-20260101-120000.flv"
    ]
