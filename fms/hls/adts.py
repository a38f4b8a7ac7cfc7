"""AAC in MPEG-TS: raw AAC frames (as RTMP and MP4 carry them) get the 7-byte ADTS header
that MPEG-TS players expect (stream_type 0x0F, ISO/IEC 13818-7 ADTS framing).

The header's fields come from the track's AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): the
audio object type, the sampling frequency index and the channel configuration. ADTS has two
bits for the profile, so only object types 1 to 4 fit (AAC Main, LC, SSR, LTP); HE-AAC
configurations that signal SBR/PS explicitly (object type 5 or 29) are written as their
underlying object type at the core sampling frequency, which is how decoders find SBR
implicitly in ADTS. No Twisted, no state.
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLING_FREQUENCIES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
"""Sampling frequency (Hz) for each sampling_frequency_index 0..12 (ISO/IEC 14496-3)."""

HEADER_SIZE = 7
"""Bytes of an ADTS header without CRC (protection_absent = 1)."""
MAX_FRAME_LENGTH = 0x1FFF
"""The largest ADTS frame, header included (bytes): aac_frame_length has 13 bits."""

_SBR = 5
_PS = 29
_ESCAPE = 31


class AudioConfigError(ValueError):
    """An AudioSpecificConfig that ADTS cannot describe, or that is cut short."""


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """What an ADTS header says about a stream: ``object_type`` (1..4), the sampling
    ``frequency_index`` into :data:`SAMPLING_FREQUENCIES` and the ``channels`` configuration
    (1..7)."""

    object_type: int
    frequency_index: int
    channels: int

    @property
    def sample_rate(self) -> int:
        """Samples per second (Hz)."""
        return SAMPLING_FREQUENCIES[self.frequency_index]


class _Bits:
    """A big-endian bit reader over a short configuration record."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._left = len(data) * 8

    def read(self, count: int) -> int:
        if count > self._left:
            raise AudioConfigError("AudioSpecificConfig is cut short")
        self._left -= count
        return (self._value >> self._left) & ((1 << count) - 1)


def _object_type(bits: _Bits) -> int:
    value = bits.read(5)
    return 32 + bits.read(6) if value == _ESCAPE else value


def _frequency_index(bits: _Bits) -> int:
    index = bits.read(4)
    if index != 15:
        if index >= len(SAMPLING_FREQUENCIES):
            raise AudioConfigError(f"reserved sampling frequency index {index}")
        return index
    frequency = bits.read(24)
    if frequency not in SAMPLING_FREQUENCIES:
        raise AudioConfigError(f"ADTS has no index for a sampling frequency of {frequency} Hz")
    return SAMPLING_FREQUENCIES.index(frequency)


def parse_audio_specific_config(config: bytes) -> AudioConfig:
    """The ADTS fields of an AudioSpecificConfig. Raises :class:`AudioConfigError` when it is
    cut short, uses a channel configuration of 0 (a program config element, which ADTS would
    have to carry in band) or an object type that ADTS cannot signal."""
    bits = _Bits(config)
    object_type = _object_type(bits)
    frequency_index = _frequency_index(bits)
    channels = bits.read(4)
    if object_type in (_SBR, _PS):
        # explicit SBR: the extension frequency, then the core object type; ADTS carries the
        # core (SBR is found implicitly by the decoder).
        _frequency_index(bits)
        object_type = _object_type(bits)
    if not 1 <= object_type <= 4:
        raise AudioConfigError(f"ADTS cannot signal audio object type {object_type}")
    if not 1 <= channels <= 7:
        raise AudioConfigError(f"ADTS cannot signal channel configuration {channels}")
    return AudioConfig(object_type, frequency_index, channels)


def header(config: AudioConfig, payload_size: int) -> bytes:
    """The 7-byte ADTS header (MPEG-4, no CRC, one raw data block) for a raw AAC frame of
    ``payload_size`` bytes. Raises :class:`AudioConfigError` when the frame with its header
    would exceed :data:`MAX_FRAME_LENGTH`."""
    length = payload_size + HEADER_SIZE
    if length > MAX_FRAME_LENGTH:
        raise AudioConfigError(f"an ADTS frame has at most {MAX_FRAME_LENGTH} bytes, not {length}")
    profile = config.object_type - 1
    # syncword(12) ID(1)=0 layer(2)=0 protection_absent(1)=1 | profile(2) sf_index(4)
    # private(1) channel(3) original(1) home(1) | copyright bits(2) frame_length(13)
    # buffer_fullness(11)=0x7FF (variable rate) raw_data_blocks(2)=0
    return bytes(
        (
            0xFF,
            0xF1,
            (profile << 6) | (config.frequency_index << 2) | (config.channels >> 2),
            ((config.channels & 3) << 6) | (length >> 11),
            (length >> 3) & 0xFF,
            ((length & 7) << 5) | 0x1F,
            0xFC,
        )
    )
