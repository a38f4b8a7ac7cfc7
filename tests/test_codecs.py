"""The codec configuration parsers (fms/live/codecs.py): Exp-Golomb and bit reading round
trips, SPS / sequence header layouts written field by field from the specifications with
Hypothesis-chosen values (sizes, cropping, chroma formats, sub-layers, operating points), and
arbitrary bytes that must give None or a configuration, never an exception. What real encoders
produce is checked against ffprobe in tests/test_stats_encoders.py."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import assume, given
from hypothesis import strategies as st

from fms.live import codecs


class BitWriter:
    """Writes the fields a parser reads, in the specifications' order."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> BitWriter:
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]
        return self

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        length = code.bit_length()
        return self.u(length - 1, 0).u(length, code)

    def se(self, value: int) -> BitWriter:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def bytes(self) -> bytes:
        bits = self.bits + [1] + [0] * (-(len(self.bits) + 1) % 8)  # rbsp trailing bits
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def escape(rbsp: bytes) -> bytes:
    """Insert emulation prevention bytes, as an encoder does (H.264 7.4.1)."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


@given(st.lists(st.integers(0, 2**31 - 2), max_size=20))
def test_unsigned_exp_golomb_reads_back_what_was_written(values: list[int]) -> None:
    writer = BitWriter()
    for value in values:
        writer.ue(value)
    reader = codecs.BitReader(writer.bytes())
    assert [reader.ue() for _ in values] == values


@given(st.lists(st.integers(-(2**30), 2**30), max_size=20))
def test_signed_exp_golomb_reads_back_what_was_written(values: list[int]) -> None:
    writer = BitWriter()
    for value in values:
        writer.se(value)
    reader = codecs.BitReader(writer.bytes())
    assert [reader.se() for _ in values] == values


@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 2**40)), max_size=20))
def test_fixed_width_fields_read_back_at_any_bit_offset(fields: list[tuple[int, int]]) -> None:
    writer = BitWriter()
    for width, value in fields:
        writer.u(width, value % (1 << width))
    reader = codecs.BitReader(writer.bytes())
    assert [reader.u(width) for width, _ in fields] == [v % (1 << w) for w, v in fields]


def test_reading_past_the_end_raises_the_documented_error() -> None:
    reader = codecs.BitReader(b"\xff")
    reader.u(8)
    try:
        reader.u(1)
    except codecs.BitsExhausted:
        return
    raise AssertionError("no BitsExhausted")


@given(st.binary(max_size=200))
def test_emulation_prevention_bytes_are_removed_exactly(rbsp: bytes) -> None:
    assert codecs.unescape_rbsp(escape(rbsp)) == rbsp


# --- H.264 SPS ------------------------------------------------------------------------------


@st.composite
def avc_sps(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """An H.264 SPS with drawn profile, chroma format, POC type, field coding and cropping;
    and the displayed width and height it describes (H.264 7.4.2.1.1)."""
    profile = draw(st.sampled_from([66, 77, 88, 100, 110, 122, 244]))
    high = profile >= 100
    chroma = draw(st.integers(0, 3)) if high else 1
    separate = high and chroma == 3 and draw(st.booleans())
    frame_mbs_only = draw(st.integers(0, 1))
    width_mbs = draw(st.integers(1, 240))
    height_units = draw(st.integers(1, 136))
    w = BitWriter().u(8, 0x67).u(8, profile).u(8, draw(st.integers(0, 255)) & 0xFC)
    w.u(8, draw(st.integers(10, 62))).ue(draw(st.integers(0, 31)))
    if high:
        w.ue(chroma)
        if chroma == 3:
            w.u(1, int(separate))
        w.ue(draw(st.integers(0, 6))).ue(draw(st.integers(0, 6))).u(1, 0)
        scaling = draw(st.booleans())
        w.u(1, int(scaling))
        if scaling:
            for i in range(8 if chroma != 3 else 12):
                present = draw(st.booleans())
                w.u(1, int(present))
                if present:  # deltas until one makes the next scale 0 (7.3.2.1.1.1)
                    deltas = draw(st.lists(st.integers(-128, 127), max_size=16 if i < 6 else 64))
                    last = next_scale = 8
                    for delta in deltas:
                        w.se(delta)
                        next_scale = (last + delta + 256) % 256
                        if next_scale == 0:
                            break
                        last = next_scale
                    else:
                        for _ in range(len(deltas), 16 if i < 6 else 64):
                            w.se(0)
    w.ue(draw(st.integers(0, 12)))
    poc_type = draw(st.integers(0, 2))
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(draw(st.integers(0, 12)))
    elif poc_type == 1:
        w.u(1, 0).se(draw(st.integers(-100, 100))).se(draw(st.integers(-100, 100)))
        cycle = draw(st.integers(0, 5))
        w.ue(cycle)
        for _ in range(cycle):
            w.se(draw(st.integers(-100, 100)))
    w.ue(draw(st.integers(0, 16))).u(1, 0).ue(width_mbs - 1).ue(height_units - 1)
    w.u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 1)
    w.u(1, 1)
    width, height = width_mbs * 16, (2 - frame_mbs_only) * height_units * 16
    array_type = 0 if separate else chroma
    unit_x = 1 if array_type in (0, 3) else 2
    unit_y = (2 if array_type == 1 else 1) * (2 - frame_mbs_only)
    crop = draw(st.booleans())
    w.u(1, int(crop))
    if crop:
        left = draw(st.integers(0, (width // unit_x - 1) // 2))
        right = draw(st.integers(0, (width // unit_x - 1) // 2))
        top = draw(st.integers(0, (height // unit_y - 1) // 2))
        bottom = draw(st.integers(0, (height // unit_y - 1) // 2))
        w.ue(left).ue(right).ue(top).ue(bottom)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    w.u(1, 0)  # no VUI
    return escape(w.bytes()), width, height


@given(avc_sps())
def test_the_h264_sps_gives_the_displayed_size(case: tuple[bytes, int, int]) -> None:
    sps, width, height = case
    found = codecs.parse_avc_sps(sps)
    assert found is not None
    assert (found.width, found.height) == (width, height)


@given(avc_sps())
def test_an_avc_configuration_record_reads_its_first_sps(case: tuple[bytes, int, int]) -> None:
    sps, width, height = case
    record = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + len(sps).to_bytes(2, "big") + sps
    found = codecs.parse_avc_config(record)
    assert found is not None
    assert (found.width, found.height) == (width, height)
    assert found.level == f"{sps[3] // 10}.{sps[3] % 10}" or found.level == "1b"


def test_h264_profiles_and_levels_are_named_as_ffmpeg_names_them() -> None:
    assert codecs.avc_profile_name(66, 0x40) == "Constrained Baseline"
    assert codecs.avc_profile_name(100, 0) == "High"
    assert codecs.avc_profile_name(110, 0x10) == "High 10 Intra"
    assert codecs.avc_level_name(31) == "3.1"
    assert codecs.avc_level_name(11, 66, 0x10) == "1b"


# --- HEVC SPS -------------------------------------------------------------------------------


@st.composite
def hevc_sps(draw: st.DrawFn) -> tuple[bytes, int, int, int, int]:
    """An HEVC SPS with drawn sub-layers, chroma format and conformance window; and its
    displayed width and height, profile and level (H.265 7.3.2.2)."""
    sub_layers = draw(st.integers(0, 6))
    profile = draw(st.sampled_from([1, 2, 3, 4]))
    level = draw(st.sampled_from([30, 60, 63, 90, 93, 120, 123, 150, 153, 156, 180, 186]))
    chroma = draw(st.integers(0, 3))
    w = BitWriter().u(16, 33 << 9 | 1).u(4, 0).u(3, sub_layers).u(1, 1)
    w.u(2, 0).u(1, 0).u(5, profile).u(32, draw(st.integers(0, 2**32 - 1)))
    w.u(48, draw(st.integers(0, 2**48 - 1))).u(8, level)
    present = [(draw(st.booleans()), draw(st.booleans())) for _ in range(sub_layers)]
    for profile_present, level_present in present:
        w.u(1, int(profile_present)).u(1, int(level_present))
    if sub_layers:
        w.u(2 * (8 - sub_layers), 0)
    for profile_present, level_present in present:
        if profile_present:
            w.u(88, draw(st.integers(0, 2**88 - 1)))
        if level_present:
            w.u(8, draw(st.integers(0, 255)))
    w.ue(draw(st.integers(0, 15))).ue(chroma)
    separate = False
    if chroma == 3:
        separate = draw(st.booleans())
        w.u(1, int(separate))
    width = draw(st.integers(1, 512)) * 8
    height = draw(st.integers(1, 512)) * 8
    w.ue(width).ue(height)
    array_type = 0 if separate else chroma
    sub_w = 2 if array_type in (1, 2) else 1
    sub_h = 2 if array_type == 1 else 1
    window = draw(st.booleans())
    w.u(1, int(window))
    if window:
        left, right = (draw(st.integers(0, (width // sub_w - 1) // 2)) for _ in range(2))
        top, bottom = (draw(st.integers(0, (height // sub_h - 1) // 2)) for _ in range(2))
        w.ue(left).ue(right).ue(top).ue(bottom)
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    w.ue(0).ue(0)  # bit depths: the parser stops before them
    return escape(w.bytes()), width, height, profile, level


@given(hevc_sps())
def test_the_hevc_sps_gives_the_displayed_size_profile_and_level(
    case: tuple[bytes, int, int, int, int],
) -> None:
    sps, width, height, profile, level = case
    found = codecs.parse_hevc_sps(sps)
    assert found is not None
    assert (found.width, found.height) == (width, height)
    assert found.profile == {1: "Main", 2: "Main 10", 3: "Main Still Picture", 4: "Rext"}[profile]
    assert round(float(found.level or "0") * 30) == level


@given(hevc_sps())
def test_an_hevc_configuration_record_reads_the_sps_in_its_arrays(
    case: tuple[bytes, int, int, int, int],
) -> None:
    sps, width, height, _, _ = case
    vps = b"\x40\x01" + b"\x0c" * 10
    record = bytes([1, 1]) + b"\x00" * 10 + bytes([93]) + b"\x00" * 9 + bytes([2])
    for nal_type, nal in ((32, vps), (33, sps)):
        record += bytes([0x80 | nal_type]) + (1).to_bytes(2, "big")
        record += len(nal).to_bytes(2, "big") + nal
    found = codecs.parse_hevc_config(record)
    assert found is not None
    assert (found.width, found.height) == (width, height)


# --- AV1 ------------------------------------------------------------------------------------


@st.composite
def av1_sequence_header(draw: st.DrawFn) -> tuple[bytes, int, int, int]:
    """An AV1 sequence header OBU payload with drawn timing and decoder model info and
    operating points; and its max frame size and operating point 0's level (AV1 5.5.1)."""
    w = BitWriter().u(3, draw(st.integers(0, 2))).u(1, 0)
    reduced = draw(st.booleans())
    w.u(1, int(reduced))
    levels = [draw(st.integers(0, 23))]
    if reduced:
        w.u(5, levels[0])
    else:
        timing = draw(st.booleans())
        w.u(1, int(timing))
        model = False
        delay_bits = 0
        if timing:
            w.u(32, 1001).u(32, 30000)
            equal = draw(st.booleans())
            w.u(1, int(equal))
            if equal:
                ticks = draw(st.integers(0, 1000)) + 1
                w.u(ticks.bit_length() - 1, 0).u(ticks.bit_length(), ticks)  # uvlc
            model = draw(st.booleans())
            w.u(1, int(model))
            if model:
                delay_bits = draw(st.integers(1, 32))
                w.u(5, delay_bits - 1).u(32, 90000).u(5, 31).u(5, 31)
        initial = draw(st.booleans())
        w.u(1, int(initial))
        points = draw(st.integers(1, 4))
        levels += [draw(st.integers(0, 23)) for _ in range(points - 1)]
        w.u(5, points - 1)
        for level in levels:
            w.u(12, 0).u(5, level)
            if level > 7:
                w.u(1, 0)
            if model:
                present = draw(st.booleans())
                w.u(1, int(present))
                if present:
                    w.u(delay_bits, 0).u(delay_bits, 0).u(1, 0)
            if initial:
                w.u(1, 1).u(4, 3)
    width = draw(st.integers(1, 8192))
    height = draw(st.integers(1, 4352))
    width_bits, height_bits = width.bit_length(), height.bit_length()
    w.u(4, width_bits - 1).u(4, height_bits - 1).u(width_bits, width - 1)
    w.u(height_bits, height - 1)
    return w.bytes(), width, height, levels[0]


@given(av1_sequence_header())
def test_the_av1_sequence_header_gives_the_frame_size_and_level(
    case: tuple[bytes, int, int, int],
) -> None:
    header, width, height, level = case
    assume(width.bit_length() > 0 and height.bit_length() > 0)
    found = codecs.parse_av1_sequence_header(header)
    assert found is not None
    assert (found.width, found.height) == (width, height)
    major, minor = (int(x) for x in (found.level or "0.0").split("."))
    assert (major - 2) * 4 + minor == level


@given(av1_sequence_header())
def test_an_av1_configuration_record_reads_its_sequence_header_obu(
    case: tuple[bytes, int, int, int],
) -> None:
    header, width, height, _ = case
    obu = bytes([codecs.OBU_SEQUENCE_HEADER << 3 | 0x02])
    size = len(header)
    leb = bytearray()
    while True:
        leb.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            break
    record = bytes([0x81, 0x08, 0x0C, 0x00]) + obu + bytes(leb) + header
    found = codecs.parse_av1_config(record)
    assert found is not None
    assert (found.width, found.height) == (width, height)


# --- audio ----------------------------------------------------------------------------------


@given(
    st.sampled_from([1, 2, 3, 4]),
    st.integers(0, 12),
    st.sampled_from([1, 2, 3, 4, 5, 6, 7]),
)
def test_the_aac_audio_specific_config_gives_rate_and_channels(
    object_type: int, rate_index: int, channel_config: int
) -> None:
    asc = BitWriter().u(5, object_type).u(4, rate_index).u(4, channel_config).u(3, 0)
    found = codecs.parse_aac_config(asc.bytes())
    assert found is not None
    assert found.sample_rate == codecs.AAC_RATES[rate_index]
    assert found.channels == (8 if channel_config == 7 else channel_config)


def test_he_aac_reports_the_sbr_output_rate() -> None:
    """Explicit SBR signalling (object type 5): core 24 kHz, output 48 kHz."""
    asc = BitWriter().u(5, 5).u(4, 6).u(4, 2).u(4, 3).u(5, 2).bytes()
    found = codecs.parse_aac_config(asc)
    assert found is not None
    assert (found.profile, found.sample_rate, found.channels) == ("HE-AAC", 48000, 2)


def test_the_opus_head_gives_the_channels_and_the_48_khz_decoder_rate() -> None:
    head = b"OpusHead\x01\x06" + (312).to_bytes(2, "little") + (44100).to_bytes(4, "little")
    found = codecs.parse_opus_head(head + b"\x00\x00\x01" + b"\x04\x02" + bytes(range(6)))
    assert found is not None
    assert (found.sample_rate, found.channels) == (48000, 6)


PARSERS: list[Callable[[bytes], object]] = [
    codecs.parse_avc_sps,
    codecs.parse_avc_config,
    codecs.parse_hevc_sps,
    codecs.parse_hevc_config,
    codecs.parse_av1_sequence_header,
    codecs.parse_av1_config,
    codecs.parse_vp_config,
    codecs.parse_vp9_keyframe,
    codecs.parse_aac_config,
    codecs.parse_opus_head,
    codecs.parse_flac_config,
    codecs.parse_mp3_frame,
    codecs.parse_ac3_frame,
]


@given(st.binary(max_size=128))
def test_arbitrary_bytes_give_a_configuration_or_none(data: bytes) -> None:
    for parser in PARSERS:
        found = parser(data)
        assert found is None or isinstance(found, (codecs.VideoConfig, codecs.AudioConfig))


@given(st.binary(max_size=64))
def test_arbitrary_bytes_after_a_valid_record_prefix_give_a_configuration_or_none(
    tail: bytes,
) -> None:
    """Truncated and corrupted records past the fixed part: the parsers stop cleanly."""
    prefixes = {
        codecs.parse_avc_config: b"\x01\x64\x00\x1f\xff\xe1",
        codecs.parse_hevc_config: b"\x01\x01" + b"\x00" * 21,
        codecs.parse_av1_config: b"\x81\x08\x0c\x00",
        codecs.parse_avc_sps: b"\x67\x64\x00\x1f",
        codecs.parse_hevc_sps: b"\x42\x01",
    }
    for parser, prefix in prefixes.items():
        found = parser(prefix + tail)
        assert found is None or isinstance(found, codecs.VideoConfig)
