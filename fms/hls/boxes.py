"""ISO base media file format (ISO/IEC 14496-12) boxes, written with :mod:`struct`: the init
segment of a fragmented MP4 stream (``ftyp`` + ``moov``) for the tracks of a live stream.

A box is a 32-bit big-endian size (header included, in bytes), a four-character type and its
body; a *full* box adds one byte of version and three of flags. Everything here is written
once per publish (the init segment changes only when a codec configuration does), so clarity
wins over speed; the per-fragment boxes are in :mod:`fms.hls.fmp4`.

The init segment declares no samples (empty ``stts``/``stsc``/``stsz``/``stco``) and a
``mvex``/``trex`` per track: every sample lives in a movie fragment, as CMAF requires.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fms.hls.samples import TrackConfig
from fms.live import codecs

VIDEO_TIMESCALE = 90000
"""Ticks per second of every video track: the MPEG clock, which divides the usual frame
rates (24, 25, 30, 50, 60 and their 1.001 variants within a tick) and milliseconds exactly."""

VIDEO_CODECS = frozenset({"avc1", "hvc1", "av01"})
AUDIO_CODECS = frozenset({"mp4a", "Opus"})
"""The codecs this muxer carries (Enhanced RTMP FourCCs); a track of another codec is left
out of the stream (:func:`supported`)."""

_CONFIG_BOX = {"avc1": b"avcC", "hvc1": b"hvcC", "av01": b"av1C"}
_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
"""The unity transformation matrix of ``mvhd`` and ``tkhd`` (16.16 and 2.30 fixed point)."""
_LANGUAGE_UND = ((ord("u") - 0x60) << 10) | ((ord("n") - 0x60) << 5) | (ord("d") - 0x60)


def box(kind: bytes, *parts: bytes) -> bytes:
    """One box: size, ``kind`` (4 bytes) and the concatenated ``parts`` as its body."""
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    """A full box: a box whose body starts with a version byte and 24 bits of flags."""
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """What the init segment says of one track, read from its configuration record.

    ``track_id`` is the MP4 track id (1-based, unique in the movie), ``timescale`` its ticks
    per second (90000 for video, the sample rate for audio), ``width``/``height`` in pixels
    (0 when the record does not say), ``sample_rate`` in Hz and ``channels`` for audio.
    """

    track_id: int
    config: TrackConfig
    timescale: int
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0


def supported(config: TrackConfig) -> bool:
    """True for a track this muxer can carry (H.264, HEVC, AV1, AAC, Opus)."""
    if config.kind == "video":
        return config.codec in VIDEO_CODECS
    return config.codec in AUDIO_CODECS


def track_info(track_id: int, config: TrackConfig) -> TrackInfo:
    """The facts of ``config`` the boxes need. Raises ``ValueError`` for a codec this muxer
    does not carry or an audio record it cannot read (the rate is the track's timescale)."""
    if not supported(config):
        raise ValueError(f"fragmented MP4 here carries no {config.kind} codec {config.codec!r}")
    if config.kind == "video":
        parse = {
            "avc1": codecs.parse_avc_config,
            "hvc1": codecs.parse_hevc_config,
            "av01": codecs.parse_av1_config,
        }[config.codec]
        video = parse(config.config)
        width = (video.width or 0) if video is not None else 0
        height = (video.height or 0) if video is not None else 0
        return TrackInfo(track_id, config, VIDEO_TIMESCALE, width=width, height=height)
    if config.codec == "Opus":
        audio = codecs.parse_opus_head(config.config)
    else:
        audio = codecs.parse_aac_config(config.config)
    if audio is None or not audio.sample_rate:
        raise ValueError(f"unreadable {config.codec} configuration {config.config.hex()}")
    return TrackInfo(
        track_id,
        config,
        audio.sample_rate,
        sample_rate=audio.sample_rate,
        channels=audio.channels or 2,
    )


def init_segment(tracks: list[TrackInfo]) -> bytes:
    """``ftyp`` + ``moov`` for ``tracks`` (in track id order): what ``#EXT-X-MAP`` names."""
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfcmp41iso5")
    next_id = max((t.track_id for t in tracks), default=0) + 1
    mvhd = full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, 1000, 0),  # creation, modification, timescale (ms), duration
        struct.pack(">IH", 0x00010000, 0x0100),  # rate 1.0, volume 1.0
        bytes(10), _MATRIX, bytes(24), struct.pack(">I", next_id),
    )  # fmt: skip
    traks = [_trak(t) for t in tracks]
    trexs = [full_box(b"trex", 0, 0, struct.pack(">5I", t.track_id, 1, 0, 0, 0)) for t in tracks]
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trexs))


def _trak(track: TrackInfo) -> bytes:
    video = track.config.kind == "video"
    tkhd = full_box(
        b"tkhd", 0, 0x000003,  # enabled, in movie
        struct.pack(">5I", 0, 0, track.track_id, 0, 0),  # times, id, reserved, duration
        bytes(8), struct.pack(">hhH", 0, 0, 0 if video else 0x0100), bytes(2), _MATRIX,
        struct.pack(">II", track.width << 16, track.height << 16),
    )  # fmt: skip
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">4IHH", 0, 0, track.timescale, 0, _LANGUAGE_UND, 0))
    handler, name = (b"vide", b"VideoHandler\0") if video else (b"soun", b"SoundHandler\0")
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), handler, bytes(12), name)
    header = full_box(b"vmhd", 0, 1, bytes(8)) if video else full_box(b"smhd", 0, 0, bytes(4))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), _sample_entry(track)),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )
    minf = box(b"minf", header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def _sample_entry(track: TrackInfo) -> bytes:
    config = track.config
    common = bytes(6) + struct.pack(">H", 1)  # reserved, data_reference_index
    if config.kind == "video":
        return box(
            config.codec.encode("latin-1"), common,
            bytes(16),  # pre_defined, reserved, pre_defined[3]
            struct.pack(">HHII", track.width, track.height, 0x00480000, 0x00480000),  # 72 dpi
            bytes(4), struct.pack(">H", 1), bytes(32),  # reserved, frame_count, compressorname
            struct.pack(">Hh", 0x0018, -1),  # depth, pre_defined
            box(_CONFIG_BOX[config.codec], config.config),
        )  # fmt: skip
    rate = min(track.sample_rate, 0xFFFF)  # 16.16 fixed point: rates above 65535 do not fit
    audio = common + bytes(8) + struct.pack(">HHHHI", track.channels, 16, 0, 0, rate << 16)
    if config.codec == "Opus":
        return box(b"Opus", audio, _dops(config.config))
    return box(b"mp4a", audio, _esds(track))


def _descriptor(tag: int, body: bytes) -> bytes:
    """An MPEG-4 descriptor (ISO/IEC 14496-1): tag, size in 7-bit groups, body."""
    size = len(body)
    groups = [size & 0x7F]
    size >>= 7
    while size:
        groups.append(0x80 | (size & 0x7F))
        size >>= 7
    return bytes((tag, *reversed(groups))) + body


def _esds(track: TrackInfo) -> bytes:
    """The elementary stream descriptor of an AAC track: object type 0x40 (MPEG-4 audio),
    stream type 5 (audio), and the AudioSpecificConfig as decoder-specific info."""
    decoder_config = _descriptor(
        0x04,
        struct.pack(">BB", 0x40, (0x05 << 2) | 1) + bytes(3) + struct.pack(">II", 0, 0)
        + _descriptor(0x05, track.config.config),
    )  # fmt: skip
    es = _descriptor(
        0x03,
        struct.pack(">HB", track.track_id, 0) + decoder_config + _descriptor(0x06, b"\x02"),
    )
    return full_box(b"esds", 0, 0, es)


def _dops(head: bytes) -> bytes:
    """``dOps`` (Opus in ISO BMFF) from an Opus ID header (RFC 7845: ``OpusHead``, its
    numbers little-endian): the same fields, big-endian, without the magic and with version 0."""
    if len(head) < 19 or head[:8] != b"OpusHead":
        raise ValueError("not an Opus ID header")
    channels = head[9]
    pre_skip, rate, gain = struct.unpack_from("<HIh", head, 10)
    family = head[18]
    body = struct.pack(">BBHIhB", 0, channels, pre_skip, rate, gain, family)
    if family != 0:
        body += head[19 : 21 + channels]  # stream count, coupled count, channel mapping
    return box(b"dOps", body)
