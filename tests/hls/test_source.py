"""RTMP audio/video payloads to muxer input (fms.hls.source): what follows each tag header."""

from __future__ import annotations

from fms.hls.samples import Sample, TrackConfig
from fms.hls.source import read_message


def test_legacy_avc_header_is_a_config_and_frames_carry_signed_composition_time() -> None:
    assert read_message(9, 0, b"\x17\x00\x00\x00\x00REC") == [TrackConfig("video", "avc1", b"REC")]
    frame = b"\x27\x01\xff\xff\xd8" + b"NAL"  # inter frame, composition time -40 ms
    assert read_message(9, 120, frame) == [Sample("video", 120, -40, False, b"NAL")]


def test_legacy_aac_header_and_raw_frame() -> None:
    assert read_message(8, 0, b"\xaf\x00\x12\x10") == [TrackConfig("audio", "mp4a", b"\x12\x10")]
    assert read_message(8, 23, b"\xaf\x01RAW") == [Sample("audio", 23, 0, True, b"RAW")]


def test_enhanced_coded_frames_x_has_no_composition_time() -> None:
    """CodedFramesX (packet type 3) of hvc1: the body after the FourCC is the frame."""
    payload = bytes((0x80 | 0x10 | 3,)) + b"hvc1" + b"\x00\x00\x05NAL"
    assert read_message(9, 40, payload) == [Sample("video", 40, 0, True, b"\x00\x00\x05NAL")]


def test_enhanced_coded_frames_of_hevc_carry_composition_time() -> None:
    payload = bytes((0x80 | 0x20 | 1,)) + b"hvc1" + b"\x00\x00\x50" + b"NAL"
    assert read_message(9, 40, payload) == [Sample("video", 40, 80, False, b"NAL")]


def test_multitrack_audio_gives_one_sample_per_track() -> None:
    """ManyTracks Opus: two tracks, each with its id and 24-bit size."""
    payload = (
        bytes((0x95, 0x11)) + b"Opus" + b"\x00" + (2).to_bytes(3, "big") + b"AA"
        + b"\x01" + (3).to_bytes(3, "big") + b"BBB"
    )  # fmt: skip
    assert read_message(8, 60, payload) == [
        Sample("audio", 60, 0, True, b"AA", 0),
        Sample("audio", 60, 0, True, b"BBB", 1),
    ]


def test_sequence_end_and_legacy_mp3_give_nothing() -> None:
    assert read_message(9, 0, b"\x17\x02\x00\x00\x00") == []
    assert read_message(8, 0, b"\x2f\xff\xfb") == []
