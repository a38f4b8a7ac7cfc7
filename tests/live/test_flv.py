"""FLV framing (fms.live.flv) and the FLV-tag logs of a LiveStream: tags round-trip through a
strict reader, every HTTP-FLV viewer shares one encoding per message, timestamps count from the
publish's first media message, late joiners start with metadata and sequence headers as tags,
and the header flags follow what the stream carries. In memory: no sockets, no clock."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.amf import decode_payload
from fms.live import flv
from fms.live import stream as stream_module
from fms.live.stream import FanoutLimits, LiveStream
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Data, Media
from tests.support.live_sink import AAC_HEADER, AVC_HEADER, Sink, audio, inter, key, published

TAG_TYPES = st.sampled_from([flv.TAG_AUDIO, flv.TAG_VIDEO, flv.TAG_SCRIPT])
STAMPS = st.integers(min_value=0, max_value=0xFFFFFFFF)


@given(st.lists(st.tuples(TAG_TYPES, STAMPS, st.binary(max_size=300)), max_size=20))
def test_tags_read_back_as_written_with_32_bit_timestamps(
    tags: list[tuple[int, int, bytes]],
) -> None:
    data = flv.file_header(audio=True, video=True) + b"".join(
        flv.encode_tag(t, ts, payload) for t, ts, payload in tags
    )
    flags, read = flv.read_file(data)
    assert flags == flv.FLAG_AUDIO | flv.FLAG_VIDEO
    assert [(t.tag_type, t.timestamp, t.payload) for t in read] == tags


@given(TAG_TYPES, STAMPS, st.binary(max_size=300))
def test_a_tag_is_11_header_bytes_the_payload_and_its_size(
    tag_type: int, stamp: int, payload: bytes
) -> None:
    tag = flv.encode_tag(tag_type, stamp, payload)
    assert len(tag) == 11 + len(payload) + 4
    assert tag[0] == tag_type
    assert int.from_bytes(tag[1:4], "big") == len(payload)
    assert int.from_bytes(tag[4:7], "big") == stamp & 0xFFFFFF  # low 24 bits first
    assert tag[7] == stamp >> 24  # then the extended (high) byte
    assert tag[8:11] == b"\0\0\0"
    assert tag[11:-4] == payload
    assert struct.unpack(">I", tag[-4:])[0] == 11 + len(payload)


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=200))
def test_a_stream_cut_anywhere_reads_as_its_whole_tags_only(payload: bytes, cut: int) -> None:
    whole = flv.file_header(audio=False, video=True) + flv.encode_tag(9, 40, payload) * 2
    cut_at = min(13 + cut, len(whole))
    _, read = flv.read_file(whole[:cut_at])
    complete = (cut_at - 13) // (15 + len(payload))
    assert len(read) == complete
    assert all(tag.payload == payload for tag in read)


@pytest.mark.parametrize(
    ("audio_flag", "video_flag", "byte"), [(True, True, 5), (True, False, 4), (False, True, 1)]
)
def test_the_file_header_flags_only_the_tracks_present(
    audio_flag: bool, video_flag: bool, byte: int
) -> None:
    header = flv.file_header(audio=audio_flag, video=video_flag)
    assert header == b"FLV\x01" + bytes([byte]) + b"\0\0\0\x09" + b"\0\0\0\0"


def test_a_tag_type_flv_has_not_and_an_oversized_body_are_refused() -> None:
    with pytest.raises(ValueError):
        flv.encode_tag(20, 0, b"")
    with pytest.raises(ValueError):
        flv.encode_tag(9, 0, bytes(flv.MAX_DATA_SIZE + 1))


# ----------------------------------------------------------------------- the FLV log


def tags(sink: Sink) -> list[flv.Tag]:
    """What an HTTP-FLV sink was written, as tags (the sink itself writes the file header)."""
    return flv.read_file(flv.file_header(audio=True, video=True) + b"".join(sink.writes))[1]


def test_every_flv_viewer_shares_one_encoding_per_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[int] = []
    real = flv.encode_tag

    def counting(tag_type: int, timestamp: int, payload: bytes) -> bytes:
        made.append(tag_type)
        return real(tag_type, timestamp, payload)

    monkeypatch.setattr(stream_module.flv, "encode_tag", counting)
    stream = published()
    stream.publish_message(key(0))
    sinks = [Sink() for _ in range(1000)]
    for sink in sinks:
        stream.add_player(sink, 1, flv=True)
    stream.flush(0.0)
    made.clear()
    for ts in range(40, 400, 40):
        stream.publish_message(inter(ts))
    stream.flush(0.1)
    assert len(made) == 9  # one tag per message, not one per message per viewer
    assert all(sink.writes[-1] is sinks[0].writes[-1] for sink in sinks)
    assert [t.timestamp for t in tags(sinks[0])][-9:] == list(range(40, 400, 40))


def test_flv_and_rtmp_players_of_one_stream_get_their_own_encoding() -> None:
    stream = published()
    rtmp, http = Sink(), Sink()
    stream.add_player(rtmp, 1)
    stream.add_player(http, 1, flv=True)
    stream.publish_message(key(0))
    stream.publish_message(audio(10))
    stream.flush(0.0)
    assert [(m.type_id, m.payload) for m in rtmp.messages()] == [
        (t.tag_type, t.payload) for t in tags(http)
    ]
    assert [t.tag_type for t in tags(http)] == [9, 8]


def test_flv_timestamps_count_from_the_first_media_message_of_the_publish() -> None:
    stream = published()
    sink = Sink()
    stream.add_player(sink, 1, flv=True)
    stream.set_metadata(("onMetaData", {"videocodecid": 7}))
    stream.publish_message(key(50_000))
    stream.publish_message(audio(50_010))
    stream.publish_message(inter(50_040))
    stream.flush(0.0)
    assert [(t.tag_type, t.timestamp) for t in tags(sink)] == [
        (18, 0), (9, 0), (8, 10), (9, 40),
    ]  # fmt: skip
    stream.stop_publish()
    stream.start_publish(object())
    stream.publish_message(key(90_000))
    stream.flush(1.0)
    assert tags(sink)[-1].timestamp == 0  # a new publish starts again at 0


def test_a_late_flv_joiner_gets_metadata_and_headers_as_tags_then_the_gop() -> None:
    stream = published()
    stream.set_metadata(("onMetaData", {"videocodecid": 7, "audiocodecid": 10}))
    stream.publish_message(Media(MessageType.VIDEO, 1000, 1, AVC_HEADER))
    stream.publish_message(Media(MessageType.AUDIO, 1000, 1, AAC_HEADER))
    stream.publish_message(key(1000))
    stream.publish_message(inter(1040))
    stream.publish_message(key(2000))
    stream.publish_message(inter(2040))
    sink = Sink()
    stream.add_player(sink, 1, flv=True)
    stream.flush(0.0)
    got = tags(sink)
    assert decode_payload(got[0].payload)[0] == "onMetaData"
    assert (got[0].tag_type, got[0].timestamp) == (18, 0)
    assert [(t.payload, t.timestamp) for t in got[1:3]] == [(AVC_HEADER, 1000), (AAC_HEADER, 1000)]
    assert [(t.payload, t.timestamp) for t in got[3:]] == [
        (key(2000).payload, 1000), (inter(2040).payload, 1040),
    ]  # fmt: skip  # the newest GOP, on the stream's time line (its first frame was at 1000)


def test_a_slow_flv_viewer_skips_to_the_next_keyframe_like_an_rtmp_player() -> None:
    stream = published(FanoutLimits(soft_bytes=5_000, hard_bytes=1_000_000, soft_seconds=100.0))
    stream.publish_message(key(0))
    slow, fast = Sink(), Sink()
    stream.add_player(slow, 1, flv=True)
    stream.add_player(fast, 1, flv=True)
    stream.flush(0.0)
    slow.writable = False
    for ts in range(40, 2000, 40):
        stream.publish_message(inter(ts, 500))
        stream.flush(ts / 1000)
    slow.writable = True
    stream.publish_message(key(2000))
    stream.flush(2.1)
    assert [t.timestamp for t in tags(fast)] == [0, *range(40, 2000, 40), 2000]
    assert [t.timestamp for t in tags(slow)] == [0, 2000]


@pytest.mark.parametrize(
    ("metadata", "messages", "expected"),
    [
        (None, [], (False, False)),
        ({"videocodecid": 7, "audiocodecid": 10}, [], (True, True)),
        ({"videocodecid": 7}, [], (False, True)),
        ({"audiocodecid": 10}, [], (True, False)),
        (None, [Media(MessageType.AUDIO, 0, 1, AAC_HEADER)], (True, False)),
        (None, [Media(MessageType.VIDEO, 0, 1, AVC_HEADER)], (False, True)),
    ],
)
def test_a_stream_carries_what_its_metadata_and_messages_say(
    metadata: dict[str, int] | None, messages: list[Media], expected: tuple[bool, bool]
) -> None:
    stream = LiveStream("live", "cam")
    stream.start_publish(object())
    if metadata is not None:
        stream.set_metadata(("onMetaData", metadata))
    for message in messages:
        stream.publish_message(message)
    assert stream.carries() == expected


def test_script_data_of_an_amf3_message_becomes_an_amf0_tag() -> None:
    stream = published()
    sink = Sink()
    stream.add_player(sink, 1, flv=True)
    stream.publish_message(key(0))
    stream.publish_message(Data(("onTextData", {"text": "hi"}), 1, 40, amf3=True))
    stream.flush(0.0)
    last = tags(sink)[-1]
    assert last.tag_type == 18
    assert list(decode_payload(last.payload)) == ["onTextData", {"text": "hi"}]
