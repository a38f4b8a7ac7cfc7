"""Codec facts from the bytes a publisher already sends: decoder configuration records,
sequence headers and frame headers, read for the figures of :mod:`fms.live.stats`.

Nothing is decoded. Each parser reads one configuration (AVCDecoderConfigurationRecord and its
SPS, HEVCDecoderConfigurationRecord and its SPS, AV1CodecConfigurationRecord and its sequence
header OBU, the VP9 configuration record and a VP9 keyframe header, AAC's AudioSpecificConfig,
the Opus ID header, FLAC's STREAMINFO, an MP3, AC-3 or E-AC-3 frame header) and returns a
:class:`VideoConfig` or :class:`AudioConfig`, or None when the bytes are not what they should be
(truncated, another version, garbage): a figure then stays unknown, nothing raises.

Names follow FFmpeg's (``ffprobe``) so that operators can compare: profiles as FFmpeg names
them ("High", "Main 10", "LC"), levels as the specification writes them ("3.1", "4.0").
Widths and heights are the displayed size (after the SPS cropping window / conformance window).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """What a video configuration says; None where it says nothing."""

    profile: str | None = None
    level: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """What an audio configuration says; ``sample_rate`` in Hz is the decoder's output rate."""

    profile: str | None = None
    sample_rate: int | None = None
    channels: int | None = None


class BitsExhausted(ValueError):
    """A read ran past the end of the bytes."""


class BitReader:
    """Big-endian bit reader with the Exp-Golomb codes of H.264/HEVC (``ue(v)``, ``se(v)``)
    and AV1's ``uvlc()``."""

    __slots__ = ("_bits", "_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._bits = len(data) * 8

    @property
    def position(self) -> int:
        """Bits read so far."""
        return self._pos

    def u(self, count: int) -> int:
        """The next ``count`` bits as an unsigned number."""
        if count == 0:
            return 0
        end = self._pos + count
        if end > self._bits:
            raise BitsExhausted(f"{count} bits wanted at bit {self._pos} of {self._bits}")
        first, last = self._pos >> 3, (end + 7) >> 3
        chunk = int.from_bytes(self._data[first:last], "big")
        self._pos = end
        return (chunk >> (last * 8 - end)) & ((1 << count) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, count: int) -> None:
        if self._pos + count > self._bits:
            raise BitsExhausted(f"{count} bits skipped at bit {self._pos} of {self._bits}")
        self._pos += count

    def ue(self) -> int:
        """Unsigned Exp-Golomb (H.264 9.1): ``n`` zeros, a one, ``n`` bits."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """Signed Exp-Golomb: 1, -1, 2, -2... for codes 1, 2, 3, 4..."""
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)

    def uvlc(self) -> int:
        """AV1 ``uvlc()`` (4.10.3): like ``ue`` but 32 zeros mean the largest value."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return (1 << zeros) - 1 + self.u(zeros)


def unescape_rbsp(nal: bytes) -> bytes:
    """Remove emulation prevention bytes (``00 00 03`` -> ``00 00``) from a NAL unit."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


# ------------------------------------------------------------------------------------ H.264

_AVC_PROFILES = {
    44: "CAVLC 4:4:4",
    66: "Baseline",
    77: "Main",
    83: "Scalable Baseline",
    86: "Scalable High",
    88: "Extended",
    100: "High",
    110: "High 10",
    118: "Multiview High",
    122: "High 4:2:2",
    128: "Stereo High",
    244: "High 4:4:4 Predictive",
}
_AVC_HIGH = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def avc_profile_name(profile_idc: int, constraints: int) -> str | None:
    """FFmpeg's name of an H.264 profile; ``constraints`` is the byte of constraint_set flags
    (set0 is its top bit)."""
    name = _AVC_PROFILES.get(profile_idc)
    if name is None:
        return None
    if profile_idc == 66 and constraints & 0x40:
        return "Constrained Baseline"
    if profile_idc in (110, 122, 244) and constraints & 0x10:
        return name + " Intra"
    return name


def avc_level_name(level_idc: int, profile_idc: int = 0, constraints: int = 0) -> str:
    """``level_idc`` 31 -> "3.1"; level 1b is 11 with constraint_set3 in Baseline/Main, or 9."""
    if level_idc == 9 or (level_idc == 11 and profile_idc in (66, 77) and constraints & 0x10):
        return "1b"
    return f"{level_idc // 10}.{level_idc % 10}"


def _skip_scaling_list(bits: BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            next_scale = (last + bits.se() + 256) % 256
        last = next_scale if next_scale != 0 else last


def parse_avc_sps(nal: bytes) -> VideoConfig | None:
    """An H.264 sequence parameter set NAL unit (header byte included): profile, level and the
    cropped picture size (H.264 7.3.2.1.1, 7.4.2.1.1)."""
    try:
        return _avc_sps(unescape_rbsp(nal))
    except ValueError:
        return None


def _avc_sps(rbsp: bytes) -> VideoConfig | None:
    bits = BitReader(rbsp)
    if bits.u(8) & 0x1F != 7:
        return None
    profile_idc = bits.u(8)
    constraints = bits.u(8)
    level_idc = bits.u(8)
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    separate_planes = False
    if profile_idc in _AVC_HIGH:
        chroma_format_idc = bits.ue()
        if chroma_format_idc > 3:
            return None
        if chroma_format_idc == 3:
            separate_planes = bits.flag()
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if bits.flag():
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.skip(1)  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        cycle = bits.ue()
        if cycle > 255:
            return None
        for _ in range(cycle):
            bits.se()
    elif poc_type != 2:
        return None
    bits.ue()  # max_num_ref_frames
    bits.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.skip(1)  # mb_adaptive_frame_field_flag
    bits.skip(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if bits.flag():  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        chroma_array_type = 0 if separate_planes else chroma_format_idc
        if chroma_array_type == 0:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            sub_width = 1 if chroma_array_type == 3 else 2
            sub_height = 2 if chroma_array_type == 1 else 1
            unit_x, unit_y = sub_width, sub_height * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        return None
    return VideoConfig(
        avc_profile_name(profile_idc, constraints),
        avc_level_name(level_idc, profile_idc, constraints),
        width,
        height,
    )


def parse_avc_config(record: bytes) -> VideoConfig | None:
    """An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1): profile and level from the
    record, the picture size from its first SPS (the record's profile and level when the SPS
    cannot be read)."""
    if len(record) < 6 or record[0] != 1:
        return None
    from_record = VideoConfig(
        avc_profile_name(record[1], record[2]), avc_level_name(record[3], record[1], record[2])
    )
    if record[5] & 0x1F == 0 or len(record) < 8:
        return from_record
    length = int.from_bytes(record[6:8], "big")
    sps = record[8 : 8 + length]
    if len(sps) != length:
        return from_record
    return parse_avc_sps(sps) or from_record


# ------------------------------------------------------------------------------------ HEVC

_HEVC_PROFILES = {
    1: "Main",
    2: "Main 10",
    3: "Main Still Picture",
    4: "Rext",
    9: "SCC",
}


def hevc_level_name(level_idc: int) -> str:
    """``general_level_idc`` is 30 times the level: 93 -> "3.1", 120 -> "4.0"."""
    return f"{level_idc // 30}.{(level_idc % 30) // 3}"


def _hevc_profile_tier_level(bits: BitReader, max_sub_layers_minus1: int) -> tuple[int, int]:
    """(general_profile_idc, general_level_idc), skipping the sub-layer parts (H.265 7.3.3)."""
    bits.skip(2 + 1)  # general_profile_space, general_tier_flag
    profile_idc = bits.u(5)
    bits.skip(32 + 48)  # compatibility flags, constraint flags
    level_idc = bits.u(8)
    present = [(bits.flag(), bits.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        bits.skip(2 * (8 - max_sub_layers_minus1))
    for profile_present, level_present in present:
        if profile_present:
            bits.skip(88)
        if level_present:
            bits.skip(8)
    return profile_idc, level_idc


def parse_hevc_sps(nal: bytes) -> VideoConfig | None:
    """An HEVC sequence parameter set NAL unit (2-byte header included): profile, level and
    the picture size inside the conformance window (H.265 7.3.2.2)."""
    try:
        return _hevc_sps(unescape_rbsp(nal))
    except ValueError:
        return None


def _hevc_sps(rbsp: bytes) -> VideoConfig | None:
    bits = BitReader(rbsp)
    if (bits.u(16) >> 9) & 0x3F != 33:
        return None
    bits.skip(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = bits.u(3)
    if max_sub_layers_minus1 > 6:
        return None
    bits.skip(1)  # sps_temporal_id_nesting_flag
    profile_idc, level_idc = _hevc_profile_tier_level(bits, max_sub_layers_minus1)
    bits.ue()  # sps_seq_parameter_set_id
    chroma_format_idc = bits.ue()
    if chroma_format_idc > 3:
        return None
    separate_planes = chroma_format_idc == 3 and bits.flag()
    width = bits.ue()
    height = bits.ue()
    if bits.flag():  # conformance_window_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        chroma = 0 if separate_planes else chroma_format_idc
        sub_width = 2 if chroma in (1, 2) else 1
        sub_height = 2 if chroma == 1 else 1
        width -= sub_width * (left + right)
        height -= sub_height * (top + bottom)
    if width <= 0 or height <= 0:
        return None
    return VideoConfig(_HEVC_PROFILES.get(profile_idc), hevc_level_name(level_idc), width, height)


def parse_hevc_config(record: bytes) -> VideoConfig | None:
    """An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1): profile and level from
    the record, the picture size from the SPS in its arrays."""
    if len(record) < 23 or record[0] != 1:
        return None
    from_record = VideoConfig(_HEVC_PROFILES.get(record[1] & 0x1F), hevc_level_name(record[12]))
    pos = 23
    for _ in range(record[22]):
        if pos + 3 > len(record):
            break
        nal_type = record[pos] & 0x3F
        count = int.from_bytes(record[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            length = int.from_bytes(record[pos : pos + 2], "big")
            nal = record[pos + 2 : pos + 2 + length]
            pos += 2 + length
            if nal_type == 33 and len(nal) == length:
                return parse_hevc_sps(nal) or from_record
    return from_record


# -------------------------------------------------------------------------------------- AV1

_AV1_PROFILES = {0: "Main", 1: "High", 2: "Professional"}
OBU_SEQUENCE_HEADER = 1


def av1_level_name(seq_level_idx: int) -> str:
    """``seq_level_idx`` 8 -> "4.0" (AV1 annex A.3); 31 means no level constraint."""
    if seq_level_idx == 31:
        return "max"
    return f"{2 + (seq_level_idx >> 2)}.{seq_level_idx & 3}"


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        if pos >= len(data):
            raise BitsExhausted("leb128 past the end")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise ValueError("leb128 longer than 8 bytes")


def parse_av1_sequence_header(payload: bytes) -> VideoConfig | None:
    """An AV1 sequence header OBU payload (AV1 5.5.1): profile, level of operating point 0,
    and the largest frame size (``max_frame_width_minus_1 + 1``)."""
    try:
        return _av1_sequence_header(payload)
    except ValueError:
        return None


def _av1_sequence_header(payload: bytes) -> VideoConfig | None:
    bits = BitReader(payload)
    profile = bits.u(3)
    bits.skip(1)  # still_picture
    reduced = bits.flag()
    if reduced:
        level = bits.u(5)
    else:
        decoder_model_info = False
        buffer_delay_length = 0
        if bits.flag():  # timing_info_present_flag
            bits.skip(32 + 32)  # num_units_in_display_tick, time_scale
            if bits.flag():  # equal_picture_interval
                bits.uvlc()
            decoder_model_info = bits.flag()
            if decoder_model_info:
                buffer_delay_length = bits.u(5) + 1
                bits.skip(32 + 5 + 5)
        initial_display_delay = bits.flag()
        level = -1
        for i in range(bits.u(5) + 1):
            bits.skip(12)  # operating_point_idc
            seq_level_idx = bits.u(5)
            if i == 0:
                level = seq_level_idx
            if seq_level_idx > 7:
                bits.skip(1)  # seq_tier
            if decoder_model_info and bits.flag():
                bits.skip(2 * buffer_delay_length + 1)
            if initial_display_delay and bits.flag():
                bits.skip(4)
    width_bits = bits.u(4) + 1
    height_bits = bits.u(4) + 1
    width = bits.u(width_bits) + 1
    height = bits.u(height_bits) + 1
    return VideoConfig(_AV1_PROFILES.get(profile), av1_level_name(level), width, height)


def av1_obus(data: bytes) -> list[tuple[int, bytes]]:
    """The (obu_type, payload) of a sequence of OBUs with size fields (low overhead format);
    stops at the first OBU without one (it runs to the end) or that is cut."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        header = data[pos]
        obu_type = (header >> 3) & 0x0F
        pos += 2 if header & 0x04 else 1
        if not header & 0x02:
            out.append((obu_type, data[pos:]))
            break
        size, pos = _leb128(data, pos)
        if pos + size > len(data):
            break
        out.append((obu_type, data[pos : pos + size]))
        pos += size
    return out


def parse_av1_config(record: bytes) -> VideoConfig | None:
    """An AV1CodecConfigurationRecord (AV1-ISOBMFF 2.3.3): profile and level from its fixed
    part, the frame size from the sequence header OBU in its configOBUs."""
    if len(record) < 4 or record[0] != 0x81:
        return None
    from_record = VideoConfig(_AV1_PROFILES.get(record[1] >> 5), av1_level_name(record[1] & 0x1F))
    try:
        obus = av1_obus(record[4:])
    except ValueError:
        return from_record
    for obu_type, payload in obus:
        if obu_type == OBU_SEQUENCE_HEADER:
            return parse_av1_sequence_header(payload) or from_record
    return from_record


# -------------------------------------------------------------------------------- VP8 / VP9


def parse_vp_config(record: bytes) -> VideoConfig | None:
    """A VPCodecConfigurationRecord as Enhanced RTMP carries it (the 'vpcC' box body: version
    1 and 3 flag bytes, then profile, level...). The size is not in it: see
    :func:`parse_vp9_keyframe`."""
    if len(record) < 6 or record[0] != 1:
        return None
    level = record[5]
    return VideoConfig(f"Profile {record[4]}", f"{level // 10}.{level % 10}" if level else None)


def parse_vp9_keyframe(frame: bytes) -> VideoConfig | None:
    """The uncompressed header of a VP9 keyframe (VP9 6.2): its frame size; None for other
    frames."""
    try:
        bits = BitReader(frame[:16])
        if bits.u(2) != 2:  # frame_marker
            return None
        profile = bits.u(1) | (bits.u(1) << 1)
        if profile == 3:
            bits.skip(1)
        if bits.flag():  # show_existing_frame
            return None
        if bits.u(1) != 0:  # frame_type: 0 is KEY_FRAME
            return None
        bits.skip(2)  # show_frame, error_resilient_mode
        if bits.u(24) != 0x498342:  # frame_sync_code
            return None
        if profile >= 2:
            bits.skip(1)  # ten_or_twelve_bit
        if bits.u(3) != 7:  # color_space other than CS_RGB
            bits.skip(1)  # color_range
            if profile in (1, 3):
                bits.skip(3)
        elif profile in (1, 3):
            bits.skip(1)
        width = bits.u(16) + 1
        height = bits.u(16) + 1
    except ValueError:
        return None
    return VideoConfig(f"Profile {profile}", None, width, height)


# ------------------------------------------------------------------------------------ audio

_AAC_PROFILES = {
    1: "Main",
    2: "LC",
    3: "SSR",
    4: "LTP",
    5: "HE-AAC",
    23: "LD",
    29: "HE-AACv2",
    39: "ELD",
}
AAC_RATES = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)  # fmt: skip
_AAC_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}


def _aac_rate(bits: BitReader) -> int | None:
    index = bits.u(4)
    if index == 15:
        return bits.u(24)
    return AAC_RATES[index] if index < len(AAC_RATES) else None


def parse_aac_config(asc: bytes) -> AudioConfig | None:
    """An AAC AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): object type as FFmpeg's profile
    name, sample rate (the SBR output rate for HE-AAC with explicit signalling) and channels
    (None for configuration 0, which defers to a program config element)."""
    try:
        bits = BitReader(asc)
        object_type = bits.u(5)
        if object_type == 31:
            object_type = 32 + bits.u(6)
        rate = _aac_rate(bits)
        channel_config = bits.u(4)
        if object_type in (5, 29):
            rate = _aac_rate(bits)
    except ValueError:
        return None
    if object_type == 0:
        return None
    return AudioConfig(_AAC_PROFILES.get(object_type), rate, _AAC_CHANNELS.get(channel_config))


OPUS_RATE = 48000
"""Opus always decodes at 48 kHz (RFC 7845 5.1: the input rate is informational)."""


def parse_opus_head(head: bytes) -> AudioConfig | None:
    """An Opus ID header (RFC 7845 5.1, ``OpusHead``): the channel count."""
    if len(head) < 19 or head[:8] != b"OpusHead" or head[9] == 0:
        return None
    return AudioConfig(None, OPUS_RATE, head[9])


def parse_flac_config(data: bytes) -> AudioConfig | None:
    """FLAC's STREAMINFO (FLAC format 8.2): sample rate and channels. Enhanced RTMP writes
    ``fLaC`` and a metadata block header before it; FFmpeg sends the bare 34-byte block:
    both are read."""
    if data[:4] == b"fLaC":
        data = data[4:]
    if len(data) >= 38 and data[0] & 0x7F == 0 and int.from_bytes(data[1:4], "big") == 34:
        data = data[4:]  # a STREAMINFO block header
    if len(data) < 34:
        return None
    rate = int.from_bytes(data[10:13], "big") >> 4
    channels = ((data[12] >> 1) & 0x07) + 1
    return AudioConfig(None, rate or None, channels)


_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def parse_mp3_frame(frame: bytes) -> AudioConfig | None:
    """An MPEG audio frame header (ISO/IEC 11172-3 2.4.2.3): sample rate and channels."""
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return None
    version = (frame[1] >> 3) & 0x03
    rate_index = (frame[2] >> 2) & 0x03
    rates = _MP3_RATES.get(version)
    if rates is None or rate_index == 3 or (frame[1] >> 1) & 0x03 == 0:
        return None
    layer = 4 - ((frame[1] >> 1) & 0x03)
    return AudioConfig(f"Layer {layer}", rates[rate_index], 1 if frame[3] >> 6 == 3 else 2)


_AC3_CHANNELS = (2, 1, 2, 3, 3, 4, 4, 5)
_AC3_RATES = (48000, 44100, 32000)


def parse_ac3_frame(frame: bytes) -> AudioConfig | None:
    """An AC-3 or E-AC-3 sync frame header (ATSC A/52 5.3, E.1.2): sample rate and channels
    (the LFE channel counted)."""
    if len(frame) < 8 or frame[:2] != b"\x0b\x77":
        return None
    try:
        bits = BitReader(frame[2:12])
        if (frame[5] >> 3) > 10:  # bsid: E-AC-3
            bits.skip(2 + 3 + 11)  # strmtyp, substreamid, frmsiz
            fscod = bits.u(2)
            if fscod == 3:
                rate = (24000, 22050, 16000, 0)[bits.u(2)]
            else:
                rate = _AC3_RATES[fscod]
                bits.skip(2)  # numblkscod
            acmod = bits.u(3)
            lfe = bits.u(1)
        else:
            bits.skip(16)  # crc1
            fscod = bits.u(2)
            if fscod == 3:
                return None
            rate = _AC3_RATES[fscod]
            bits.skip(6 + 5 + 3)  # frmsizecod, bsid, bsmod
            acmod = bits.u(3)
            if acmod & 1 and acmod != 1:
                bits.skip(2)
            if acmod & 4:
                bits.skip(2)
            if acmod == 2:
                bits.skip(2)
            lfe = bits.u(1)
    except ValueError:
        return None
    return AudioConfig(None, rate or None, _AC3_CHANNELS[acmod] + lfe)


LEGACY_RATES = (5512, 11025, 22050, 44100)
"""FLV SoundRate (2 bits of the legacy audio header), Hz."""


def legacy_audio(first: int) -> AudioConfig:
    """What the legacy FLV audio header byte says (SoundRate, SoundType); Nellymoser 8/16 kHz,
    MP3 8 kHz and Speex have fixed rates whatever the flags say."""
    sound_format = first >> 4
    rate = {4: 16000, 5: 8000, 14: 8000, 11: 16000}.get(
        sound_format, LEGACY_RATES[(first >> 2) & 3]
    )
    channels = 1 if sound_format == 11 else (first & 1) + 1
    return AudioConfig(None, rate, channels)
