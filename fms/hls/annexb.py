"""H.264 in MPEG-TS: length-prefixed NAL units (AVCC, as RTMP and MP4 carry them) become an
Annex B byte stream (start codes), with what a TS decoder that joins at a keyframe needs in
band.

RTMP sends the parameter sets once, in the AVCDecoderConfigurationRecord (ISO/IEC 14496-15
5.3.3.1); a TS player has no such side channel, so every keyframe is preceded by the SPS and
PPS of the record. ISO/IEC 13818-1 (2.14) wants every AVC access unit in a TS to begin with an
access unit delimiter, so one is put in front of every access unit that lacks one. No Twisted,
no state.
"""

from __future__ import annotations

from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
ACCESS_UNIT_DELIMITER = START_CODE + b"\x09\xf0"
"""An AUD NAL unit with primary_pic_type 7 (any slice type), then the RBSP stop bit."""


class AVCConfigError(ValueError):
    """An AVCDecoderConfigurationRecord or a length-prefixed access unit that is malformed."""


@dataclass(frozen=True, slots=True)
class AVCConfig:
    """The parts of an AVCDecoderConfigurationRecord a TS muxer uses: the size of the NAL
    length prefixes (1, 2 or 4 bytes) and the parameter sets as start-code-prefixed bytes."""

    length_size: int
    parameter_sets: bytes
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]


def parse_decoder_configuration(record: bytes) -> AVCConfig:
    """Read an AVCDecoderConfigurationRecord. Raises :class:`AVCConfigError` when a size runs
    past its end, the version is not 1 or the length size is 3 (not allowed by the spec)."""
    if len(record) < 7 or record[0] != 1:
        raise AVCConfigError("not an AVCDecoderConfigurationRecord (version 1)")
    length_size = (record[4] & 0x03) + 1
    if length_size == 3:
        raise AVCConfigError("lengthSizeMinusOne of 2 is not allowed")
    at = 5
    sets: list[list[bytes]] = [[], []]
    for which in (0, 1):
        if at >= len(record):
            raise AVCConfigError("AVCDecoderConfigurationRecord is cut short")
        count = record[at] & (0x1F if which == 0 else 0xFF)
        at += 1
        for _ in range(count):
            if at + 2 > len(record):
                raise AVCConfigError("AVCDecoderConfigurationRecord is cut short")
            size = int.from_bytes(record[at : at + 2], "big")
            at += 2
            if size == 0 or at + size > len(record):
                raise AVCConfigError("a parameter set runs past the record")
            sets[which].append(record[at : at + size])
            at += size
    sps, pps = tuple(sets[0]), tuple(sets[1])
    joined = b"".join(START_CODE + unit for unit in sps + pps)
    return AVCConfig(length_size, joined, sps, pps)


def split_nal_units(data: bytes, length_size: int) -> list[memoryview]:
    """The NAL units of a length-prefixed access unit, as views into ``data`` (no copies).
    Raises :class:`AVCConfigError` when a length runs past the end."""
    units: list[memoryview] = []
    view = memoryview(data)
    at = 0
    end = len(data)
    while at < end:
        if at + length_size > end:
            raise AVCConfigError("a NAL unit length is cut short")
        size = int.from_bytes(view[at : at + length_size], "big")
        at += length_size
        if at + size > end:
            raise AVCConfigError("a NAL unit runs past its access unit")
        if size:
            units.append(view[at : at + size])
        at += size
    return units


def access_unit_parts(config: AVCConfig, data: bytes, keyframe: bool) -> list[bytes | memoryview]:
    """One access unit as Annex B, in pieces to be joined (so that the caller joins them once,
    behind its own header): an AUD (unless the unit begins with one), the SPS and PPS of the
    record before a keyframe (unless the unit carries an SPS already), then each NAL unit
    behind a 4-byte start code."""
    units = split_nal_units(data, config.length_size)
    parts: list[bytes | memoryview] = []
    if units and units[0][0] & 0x1F == NAL_AUD:
        parts.append(START_CODE)
        parts.append(units.pop(0))
    else:
        parts.append(ACCESS_UNIT_DELIMITER)
    if keyframe and not any(unit[0] & 0x1F == NAL_SPS for unit in units):
        parts.append(config.parameter_sets)
    for unit in units:
        parts.append(START_CODE)
        parts.append(unit)
    return parts


def access_unit(config: AVCConfig, data: bytes, keyframe: bool) -> bytes:
    """:func:`access_unit_parts` joined."""
    return b"".join(access_unit_parts(config, data, keyframe))
