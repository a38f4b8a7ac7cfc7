"""Stream and player figures (fms/live/stats.py) with a fake clock: windows, rates, tracks,
resets, fallbacks and the player counters. No sockets, no wall clock: time is an argument."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.apps.interfaces import IStreamView
from fms.apps.views import StreamView
from fms.live.media import describe
from fms.live.stats import WINDOW, StreamStats, audio_packets, player_snapshot, video_packets
from fms.live.stream import FanoutLimits, LiveStream
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Data, Media
from fms.testing import FakeStream
from tests.support.live_sink import Sink

AVC_KEY = b"\x17\x01\x00\x00\x00"
AVC_INTER = b"\x27\x01\x00\x00\x00"
AAC_FRAME = b"\xaf\x01"


def video(ts: int, size: int, *, key: bool = False) -> Media:
    """An AVC frame of exactly ``size`` payload bytes at ``ts`` ms."""
    head = AVC_KEY if key else AVC_INTER
    return Media(MessageType.VIDEO, ts, 1, head + b"v" * (size - len(head)))


def audio(ts: int, size: int) -> Media:
    return Media(MessageType.AUDIO, ts, 1, AAC_FRAME + b"a" * (size - len(AAC_FRAME)))


def feed(stats: StreamStats, message: Media | Data, now: float) -> None:
    info = describe(message.type_id, message.payload) if isinstance(message, Media) else None
    stats.observe(message, info, now)  # type: ignore[arg-type]


# --- windows ------------------------------------------------------------------------------


def test_bitrate_counts_only_the_bytes_that_arrived_in_the_last_window() -> None:
    """1,000 bytes every 0.1 s for 20 s: at t=20 the window (15, 20] holds 50 messages, so
    50 * 8,000 bits / 5 s = 80 kbit/s; the 150 older messages do not count."""
    stats = StreamStats(started=0.0)
    for i in range(1, 201):
        feed(stats, video(i * 100, 1000), i / 10)
    figures = stats.snapshot(20.0)
    assert figures["bitrate_kbps"] == {"total": 80.0, "video": 80.0, "audio": 0.0}
    assert figures["bytes_in"] == 200_000
    assert figures["messages_in"] == 200


def test_a_publish_younger_than_the_window_is_measured_over_its_age() -> None:
    """2 s old with 20 messages of 1,000 bytes: 160,000 bits / 2 s, not / 5 s."""
    stats = StreamStats(started=0.0)
    for i in range(1, 21):
        feed(stats, video(i * 100, 1000), i / 10)
    assert stats.snapshot(2.0)["bitrate_kbps"]["total"] == 80.0


def test_bitrate_falls_to_zero_once_nothing_arrived_for_a_window() -> None:
    stats = StreamStats(started=0.0)
    for i in range(1, 101):
        feed(stats, video(i * 100, 1000), i / 10)
    assert stats.snapshot(10.0 + WINDOW - 0.05)["bitrate_kbps"]["total"] == 1.6  # one left
    assert stats.snapshot(10.0 + WINDOW)["bitrate_kbps"]["total"] == 0.0


def test_audio_and_video_bitrates_are_separate_and_add_up_to_the_total() -> None:
    stats = StreamStats(started=0.0)
    for i in range(1, 51):
        feed(stats, video(i * 100, 1000), i / 10)
        feed(stats, audio(i * 100, 250), i / 10)
    rates = stats.snapshot(5.0)["bitrate_kbps"]
    assert rates == {"total": 100.0, "video": 80.0, "audio": 20.0}


def test_fps_is_measured_on_timestamps_not_on_arrival() -> None:
    """Frames 40 ms apart in media time that arrive in two bursts still measure 25 fps."""
    stats = StreamStats(started=0.0)
    for i in range(50):
        feed(stats, video(i * 40, 100, key=i == 0), 1.0 if i < 25 else 2.0)
    assert stats.snapshot(2.0)["video"]["fps"] == 25.0


def test_fps_counts_only_the_frames_that_arrived_in_the_window() -> None:
    """25 fps for 10 s, then 10 fps for 5 s: at the end the window holds only the 10 fps part."""
    stats = StreamStats(started=0.0)
    now = 0.0
    for i in range(250):
        now = i * 0.04
        feed(stats, video(i * 40, 100), now)
    for i in range(1, 51):
        feed(stats, video(10_000 + i * 100, 100), 10.0 + i * 0.1)
    assert stats.snapshot(15.0)["video"]["fps"] == 10.0


def test_keyframe_interval_is_the_media_time_between_the_last_two_keyframes() -> None:
    stats = StreamStats(started=0.0)
    keys = {0, 2000, 3000}
    for i in range(100):
        feed(stats, video(i * 40, 100, key=i * 40 in keys), i * 0.04)
    assert stats.snapshot(4.0)["video"]["keyframe_interval"] == 1.0


def test_keyframe_interval_is_unknown_before_a_second_keyframe() -> None:
    stats = StreamStats(started=0.0)
    for i in range(10):
        feed(stats, video(i * 40, 100, key=i == 0), i * 0.04)
    assert stats.snapshot(1.0)["video"]["keyframe_interval"] is None


def test_keyframe_interval_uses_presentation_time() -> None:
    """With B-frames an AVC keyframe's presentation time is its timestamp plus the
    composition offset (SI24 in bytes 2-4): 2,000 ms between presentations, whatever the
    decode times say."""
    stats = StreamStats(started=0.0)
    first = Media(9, 0, 1, b"\x17\x01\x00\x00\x50" + b"k" * 10)  # shown at 0 + 80
    second = Media(9, 1960, 1, b"\x17\x01\x00\x00\x78" + b"k" * 10)  # shown at 1960 + 120
    feed(stats, first, 0.0)
    feed(stats, second, 2.0)
    assert stats.snapshot(2.0)["video"]["keyframe_interval"] == 2.0


def test_uptime_runs_from_the_start_of_the_publish() -> None:
    stats = StreamStats(started=100.0)
    assert stats.snapshot(112.5)["uptime"] == 12.5


def test_without_a_start_uptime_runs_from_the_first_message() -> None:
    stats = StreamStats()
    feed(stats, video(0, 100), 50.0)
    assert stats.snapshot(53.0)["uptime"] == 3.0


# --- sources of the figures -----------------------------------------------------------------

AVC_CONFIG = bytes.fromhex(
    "1700000000014d401effe10018674d401eeca05017fcb808800000030080000019078b16cb01000468ef8fc8"
)
"""The AVC sequence header libx264 wrote for 640x360 Main@3.0 (ffprobe agrees); its SPS codes
368 lines, cropped to 360."""


def test_the_sequence_header_gives_codec_profile_level_and_size() -> None:
    stats = StreamStats(started=0.0)
    feed(stats, Media(9, 0, 1, AVC_CONFIG), 0.0)
    found = stats.snapshot(0.0)["video"]
    assert (found["codec"], found["fourcc"], found["profile"], found["level"]) == (
        "h264",
        "avc1",
        "Main",
        "3.0",
    )
    assert (found["width"], found["height"], found["source"]) == (640, 360, "config")


def test_onmetadata_gives_the_size_when_no_configuration_says_it() -> None:
    """A codec whose configuration pyFMS cannot read (Sorenson H.263) shows the size that
    onMetaData announced, and says so."""
    stats = StreamStats(started=0.0)
    feed(stats, Data(("onMetaData", {"width": 320.0, "height": 240.0})), 0.0)
    feed(stats, Media(9, 0, 1, b"\x12" + b"x" * 50), 0.0)
    found = stats.snapshot(0.0)["video"]
    assert (found["codec"], found["fourcc"]) == ("h263", None)
    assert (found["width"], found["height"], found["source"]) == (320, 240, "metadata")


def test_the_configuration_wins_over_onmetadata() -> None:
    stats = StreamStats(started=0.0)
    feed(stats, Data(("onMetaData", {"width": 1920.0, "height": 1080.0})), 0.0)
    feed(stats, Media(9, 0, 1, AVC_CONFIG), 0.0)
    found = stats.snapshot(0.0)["video"]
    assert (found["width"], found["height"], found["source"]) == (640, 360, "config")


def test_legacy_audio_flags_give_rate_and_channels() -> None:
    """Nellymoser has no configuration: the FLV flags say 22 kHz (rate 2) mono."""
    stats = StreamStats(started=0.0)
    feed(stats, Media(8, 0, 1, bytes([0x6A]) + b"n" * 64), 0.0)
    found = stats.snapshot(0.0)["audio"]
    assert found["codec"] == "nellymoser"
    assert (found["sample_rate"], found["channels"], found["source"]) == (22050, 1, "flags")


def test_metadata_keeps_only_its_json_able_part() -> None:
    stats = StreamStats(started=0.0)
    values = {"width": 640.0, "encoder": "Lavf", "bad": float("nan"), "when": object(), 7: 1}
    feed(stats, Data(("onMetaData", values)), 0.0)
    assert stats.snapshot(0.0)["metadata"] == {"width": 640.0, "encoder": "Lavf"}
    json.dumps(stats.snapshot(0.0))


def test_a_stream_without_media_has_no_video_and_no_audio_figures() -> None:
    figures = StreamStats().snapshot(10.0)
    assert (figures["video"], figures["audio"], figures["uptime"]) == (None, None, 0.0)


# --- Enhanced RTMP multitrack ---------------------------------------------------------------


def test_each_track_of_a_multitrack_stream_has_its_own_figures() -> None:
    """ManyTracks: two HEVC tracks in one message, 25 fps each; track 0's figures are the
    stream's video figures, and each track's bitrate counts its own bytes."""
    stats = StreamStats(started=0.0)
    for i in range(50):
        body0, body1 = b"\x00" * 300, b"\x01" * 100
        payload = (
            bytes([0x80 | (0x10 if i == 0 else 0x20) | 6, 0x10 | 3])
            + b"hvc1"
            + b"\x00"
            + len(body0).to_bytes(3, "big")
            + body0
            + b"\x02"
            + len(body1).to_bytes(3, "big")
            + body1
        )
        feed(stats, Media(9, i * 40, 1, payload), (i + 1) * 0.04)
    found = stats.snapshot(2.0)["video"]
    assert [t["track_id"] for t in found["tracks"]] == [0, 2]
    assert [t["fps"] for t in found["tracks"]] == [25.0, 25.0]
    assert [t["codec"] for t in found["tracks"]] == ["hevc", "hevc"]
    assert [t["bitrate_kbps"] for t in found["tracks"]] == [60.0, 20.0]
    assert found["fps"] == 25.0 and found["bitrate_kbps"] == 60.0


@given(
    tracks=st.lists(
        st.tuples(
            st.integers(0, 255),
            st.sampled_from(["avc1", "hvc1", "av01", "vp09"]),
            st.binary(min_size=0, max_size=40),
        ),
        min_size=1,
        max_size=5,
    ),
    packet_type=st.sampled_from([0, 3]),
)
def test_many_tracks_many_codecs_split_into_their_tracks(
    tracks: list[tuple[int, str, bytes]], packet_type: int
) -> None:
    """ManyTracksManyCodecs: each track's FourCC, id and body come out as they went in."""
    payload = bytes([0x80 | 0x20 | 6, 0x20 | packet_type])
    for track_id, fourcc, body in tracks:
        payload += fourcc.encode() + bytes([track_id]) + len(body).to_bytes(3, "big") + body
    packets = video_packets(payload)
    assert [(p.track_id, p.fourcc) for p in packets] == [(t, f) for t, f, _ in tracks]
    assert [payload[p.start : p.end] for p in packets] == [b for _, _, b in tracks]


def test_an_audio_one_track_message_names_its_track() -> None:
    payload = bytes([0x90 | 5, 0x00 | 1]) + b"Opus" + b"\x03" + b"opus-packet"
    (packet,) = audio_packets(payload)
    assert (packet.track_id, packet.codec) == (3, "opus")
    assert payload[packet.start : packet.end] == b"opus-packet"


@given(st.binary(max_size=64), st.sampled_from([8, 9]))
def test_arbitrary_payloads_never_break_the_figures(payload: bytes, type_id: int) -> None:
    stats = StreamStats(started=0.0)
    feed(stats, Media(type_id, 0, 1, payload), 0.0)
    feed(stats, Media(type_id, 40, 1, payload), 0.04)
    snapshot = stats.snapshot(0.1)
    # whatever the bytes say, the figures are plain JSON and count both messages in full
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert (snapshot["messages_in"], snapshot["bytes_in"]) == (2, 2 * len(payload))


# --- the stream, its players and the plugin view -------------------------------------------


def test_a_new_publish_starts_the_figures_afresh() -> None:
    stream = LiveStream("live", "cam", FanoutLimits(), clock=lambda: 10.0)
    stream.start_publish(object())
    stream.publish_message(video(0, 1000, key=True))
    stream.stop_publish()
    stream.start_publish(object(), now=20.0)
    figures = stream.figures(21.0)
    assert (figures["bytes_in"], figures["uptime"], figures["video"]) == (0, 1.0, None)


def test_the_stream_clock_times_messages_published_without_a_time() -> None:
    now = [5.0]
    stream = LiveStream("live", "cam", FanoutLimits(), clock=lambda: now[0])
    stream.start_publish(object())
    for i in range(1, 11):
        now[0] = 5.0 + i * 0.1
        stream.publish_message(video(i * 100, 1000))
    assert stream.figures()["bitrate_kbps"]["total"] == 80.0  # 80,000 bits over 1 s
    assert stream.figures()["uptime"] == 1.0


def test_bytes_sent_to_a_player_are_what_its_sink_got() -> None:
    stream = LiveStream("live", "cam", FanoutLimits())
    stream.start_publish(object(), now=0.0)
    sink = Sink()
    player = stream.add_player(sink, 1)
    stream.publish_message(video(0, 1000, key=True), now=0.0)
    stream.publish_message(audio(0, 100), now=0.0)
    stream.flush(0.0)
    assert player.bytes_sent == sum(len(w) for w in sink.writes) > 1100
    assert player_snapshot(player)["bytes_sent"] == player.bytes_sent
    assert stream.figures(0.0)["bytes_out"] == player.bytes_sent


def test_bytes_out_keeps_what_players_that_left_were_sent() -> None:
    stream = LiveStream("live", "cam", FanoutLimits())
    stream.start_publish(object(), now=0.0)
    gone = stream.add_player(Sink(), 1)
    stream.publish_message(video(0, 1000, key=True), now=0.0)
    stream.flush(0.0)
    sent = gone.bytes_sent
    stream.remove_player(gone)
    stays = stream.add_player(Sink(), 1)
    stream.flush(0.0)
    assert stream.bytes_out == sent + stays.bytes_sent
    assert sent > 1000 and stays.bytes_sent > 1000


def test_a_slow_player_counts_the_messages_it_skipped_to_a_newer_keyframe() -> None:
    """Blocked while 5 inter frames and a keyframe arrive, past the soft bound: it skips the
    5 inter frames (the keyframe it gets), and its lag is zero once it caught up."""
    stream = LiveStream(
        "live", "cam", FanoutLimits(soft_bytes=2_000, soft_seconds=1000.0, stall_grace=0.0)
    )
    stream.start_publish(object(), now=0.0)
    sink = Sink()
    player = stream.add_player(sink, 1)
    stream.publish_message(video(0, 100, key=True))
    stream.flush(0.0)
    sink.writable = False
    for ts in range(40, 240, 40):
        stream.publish_message(video(ts, 500))
    stream.publish_message(video(240, 100, key=True))
    stream.flush(0.3)
    behind = player_snapshot(player)
    assert (behind["skipped_messages"], behind["skips"]) == (5, 1)
    assert behind["lag_bytes"] > 100
    sink.writable = True
    stream.flush(0.4)
    caught_up = player_snapshot(player)
    assert (caught_up["lag_bytes"], caught_up["lag_seconds"], caught_up["state"]) == (
        0,
        0.0,
        "active",
    )


def test_a_parked_slow_player_counts_what_passed_until_the_next_keyframe() -> None:
    """No newer keyframe to skip to: it is parked; the 10 frames behind it then and the 2
    that pass before the next keyframe are all skipped."""
    stream = LiveStream(
        "live", "cam", FanoutLimits(soft_bytes=2_000, soft_seconds=1000.0, stall_grace=0.0)
    )
    stream.start_publish(object(), now=0.0)
    stream.publish_message(video(0, 100, key=True))
    for ts in range(40, 440, 40):
        stream.publish_message(video(ts, 500))
    sink = Sink()
    sink.writable = False
    player = stream.add_player(sink, 1)  # at the cached keyframe: 11 entries behind
    stream.flush(0.5)
    sink.writable = True
    stream.publish_message(video(440, 100))
    stream.publish_message(video(480, 100))
    stream.publish_message(video(520, 100, key=True))
    stream.flush(0.6)
    assert player.skipped_messages == 11 + 2
    assert player.skips == 1


def test_a_player_that_keeps_up_skips_nothing() -> None:
    stream = LiveStream(
        "live", "cam", FanoutLimits(soft_bytes=2_000, soft_seconds=1000.0, stall_grace=0.0)
    )
    stream.start_publish(object(), now=0.0)
    player = stream.add_player(Sink(), 1)
    for i in range(20):
        stream.publish_message(video(i * 40, 500, key=i % 10 == 0))
        stream.flush(i * 0.04)
    assert (player.skipped_messages, player.skips) == (0, 0)


def test_the_stream_view_shows_the_figures_to_plugins() -> None:
    stream = LiveStream("live", "cam", FanoutLimits(), clock=lambda: 1.0)
    stream.start_publish(object(), now=0.0)
    stream.publish_message(Media(9, 0, 1, AVC_CONFIG), now=0.0)
    for i in range(26):
        stream.publish_message(video(i * 40, 500, key=i == 0), now=i * 0.04)
    view = StreamView(stream)
    assert IStreamView.providedBy(view)
    assert (view.video_codec, view.width, view.height, view.fps) == ("h264", 640, 360, 25.0)
    assert view.bitrate_kbps == view.figures["bitrate_kbps"]["total"] > 100.0


def test_the_fake_stream_of_the_testing_kit_reads_the_figures_it_was_given() -> None:
    fake = FakeStream(figures={"bitrate_kbps": {"total": 2500.0}, "video": {"codec": "hevc"}})
    assert (fake.bitrate_kbps, fake.video_codec, fake.width) == (2500.0, "hevc", None)
    assert FakeStream().bitrate_kbps == 0.0


@pytest.mark.parametrize("now", [0.0, 3.0])
def test_the_figures_are_json(now: float) -> None:
    stream = LiveStream("live", "cam", FanoutLimits())
    stream.start_publish(object(), now=0.0)
    stream.publish_message(Media(9, 0, 1, AVC_CONFIG), now=0.0)
    stream.publish_message(audio(0, 50), now=0.0)
    assert json.loads(json.dumps(stream.figures(now)))["video"]["width"] == 640


def test_a_modex_prefix_is_skipped_to_the_real_packet_type() -> None:
    """Enhanced RTMP v2 ModEx (TimestampOffsetNano, 3 bytes of data) before CodedFramesX:
    the frame is found, with its FourCC and body."""
    payload = bytes([0x80 | 0x10 | 7, 2]) + b"\x01\x02\x03" + bytes([0x00 | 3]) + b"av01body"
    (packet,) = video_packets(payload)
    assert (packet.fourcc, packet.codec, packet.keyframe) == ("av01", "av1", True)
    assert payload[packet.start : packet.end] == b"body"


def test_command_frames_and_metadata_packets_are_not_counted_as_frames() -> None:
    """Enhanced video command frames (frame type 5) and Metadata packets carry no picture:
    the frame rate counts only the coded frames."""
    stats = StreamStats(started=0.0)
    for i in range(26):
        feed(stats, Media(9, i * 40, 1, bytes([0x80 | 0x20 | 3]) + b"av01" + b"f" * 10), i * 0.04)
        feed(stats, Media(9, i * 40 + 1, 1, bytes([0x80 | 0x50 | 1, 0x01])), i * 0.04)
        feed(stats, Media(9, i * 40 + 2, 1, bytes([0x80 | 0x10 | 4]) + b"av01" + b"\x02"), i * 0.04)
    assert stats.snapshot(1.0)["video"]["fps"] == 25.0


def test_messages_sent_to_a_player_are_the_messages_its_sink_decodes() -> None:
    """A late joiner: the preamble (metadata, header) and the cached GOP count, message by
    message, as what its sink really got."""
    stream = LiveStream("live", "cam", FanoutLimits())
    stream.start_publish(object(), now=0.0)
    stream.set_metadata(("onMetaData", {"width": 320.0}))
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, b"\x17\x00\x00\x00\x00config"))
    stream.publish_message(video(0, 500, key=True), now=0.0)
    stream.publish_message(audio(10, 50), now=0.0)
    stream.publish_message(video(40, 300), now=0.0)
    sink = Sink()
    player = stream.add_player(sink, 1)
    stream.flush(0.0)
    stream.publish_message(video(80, 300), now=0.1)
    stream.flush(0.1)
    assert player.messages_sent == len(sink.messages()) == 6
    assert player_snapshot(player)["messages_sent"] == 6


class _FillingSink(Sink):
    """A socket that never drains by itself: what was written stays pending until the test
    sets ``held`` back."""

    def write(self, data: bytes) -> None:
        super().write(data)
        self.held += len(data)


def test_a_message_handed_over_in_pieces_counts_once_when_its_last_byte_is() -> None:
    stream = LiveStream("live", "cam", FanoutLimits(player_buffer=2_000))
    stream.start_publish(object(), now=0.0)
    sink = _FillingSink()
    player = stream.add_player(sink, 1)
    stream.publish_message(video(0, 5_000, key=True), now=0.0)
    counts = []
    for step in range(4):
        stream.flush(step * 0.1)
        counts.append(player.messages_sent)
        sink.held = 0
    assert counts == [0, 0, 1, 1]
    assert len(sink.messages()) == 1
