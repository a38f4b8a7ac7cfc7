"""An MPEG-TS reader for the tests, written apart from the muxer (ISO/IEC 13818-1): it checks
every packet's framing and hands back the PSI sections and PES packets as it found them."""

from __future__ import annotations

from dataclasses import dataclass


class TSReadError(AssertionError):
    """The bytes break a rule of the transport stream format."""


@dataclass
class Packet:
    pid: int
    start: bool
    counter: int
    control: int  # adaptation_field_control: 1 payload, 2 AF only, 3 AF + payload
    random_access: bool
    pcr: int | None  # the PCR base (90 kHz)
    payload: bytes
    discontinuity: bool = False  # discontinuity_indicator


@dataclass
class PES:
    pid: int
    stream_id: int
    declared_length: int  # PES_packet_length as written
    pts: int
    dts: int | None
    data: bytes  # the elementary stream bytes after the PES header
    random_access: bool
    pcr: int | None
    packets: int
    body_size: int  # the bytes after PES_packet_length that came


def mpeg2_crc(data: bytes) -> int:
    """Bit by bit: polynomial 0x04C11DB7, initial all ones, MSB first."""
    crc = 0xFFFFFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = ((crc >> 31) & 1) ^ ((byte >> bit) & 1)
            crc = (crc << 1) & 0xFFFFFFFF
            if top:
                crc ^= 0x04C11DB7
    return crc


def packets(data: bytes) -> list[Packet]:
    if len(data) % 188:
        raise TSReadError(f"{len(data)} bytes is not a whole number of 188-byte packets")
    found = []
    for at in range(0, len(data), 188):
        raw = data[at : at + 188]
        if raw[0] != 0x47:
            raise TSReadError(f"no sync byte at {at}")
        if raw[1] & 0x80:
            raise TSReadError("transport_error_indicator set")
        pid = ((raw[1] & 0x1F) << 8) | raw[2]
        control = (raw[3] >> 4) & 3
        if raw[3] >> 6:
            raise TSReadError("scrambled")
        pos = 4
        random_access = False
        discontinuity = False
        pcr = None
        if control & 2:
            length = raw[4]
            pos = 5 + length
            if (control == 3 and length > 182) or (control == 2 and length != 183):
                raise TSReadError(f"adaptation field length {length} with control {control}")
            if length:
                flags = raw[5]
                random_access = bool(flags & 0x40)
                discontinuity = bool(flags & 0x80)
                if flags & 0x10:
                    pcr = int.from_bytes(raw[6:12], "big") >> 15
                    if (raw[10] >> 1) & 0x3F != 0x3F:
                        raise TSReadError("PCR reserved bits are not ones")
                used = 1 + (6 if flags & 0x10 else 0)
                if flags & 0x0F:
                    raise TSReadError("unexpected adaptation field flags")
                if any(b != 0xFF for b in raw[5 + used : 5 + length]):
                    raise TSReadError("adaptation field stuffing is not 0xFF")
        if control == 0:
            raise TSReadError("reserved adaptation_field_control")
        found.append(
            Packet(
                pid,
                bool(raw[1] & 0x40),
                raw[3] & 0x0F,
                control,
                random_access,
                pcr,
                raw[pos:] if control & 1 else b"",
                discontinuity,
            )
        )
    return found


def check_continuity(found: list[Packet], counters: dict[int, int] | None = None) -> dict[int, int]:
    """Every PID's continuity_counter goes up by one per packet with payload (mod 16), also
    from the ``counters`` a previous segment ended with, but where a packet carries the
    discontinuity_indicator (the counter may then take any value). Returns the last counters."""
    last = dict(counters or {})
    for packet in found:
        if packet.control & 1:
            expected = (last[packet.pid] + 1) % 16 if packet.pid in last else packet.counter
            if not packet.discontinuity and packet.counter != expected:
                raise TSReadError(
                    f"PID {packet.pid:#x}: counter {packet.counter} after {last[packet.pid]}"
                )
            last[packet.pid] = packet.counter
    return last


def timestamp(raw: bytes, prefix: int) -> int:
    if raw[0] >> 4 != prefix or not raw[0] & 1 or not raw[2] & 1 or not raw[4] & 1:
        raise TSReadError(f"bad PTS/DTS field {raw.hex()} for prefix {prefix:04b}")
    return (
        ((raw[0] >> 1) & 7) << 30 | raw[1] << 22 | (raw[2] >> 1) << 15 | raw[3] << 7 | raw[4] >> 1
    )


def section(payload: bytes) -> tuple[int, bytes]:
    """The table id and body (after the 8-byte long header, before the CRC) of the section a
    PSI packet starts; the CRC is checked."""
    pointer = payload[0]
    start = 1 + pointer
    length = ((payload[start + 1] & 0x0F) << 8) | payload[start + 2]
    whole = payload[start : start + 3 + length]
    if mpeg2_crc(whole) != 0:
        raise TSReadError("section CRC mismatch")
    if any(b != 0xFF for b in payload[start + 3 + length :]):
        raise TSReadError("PSI packet not filled with 0xFF")
    return whole[0], whole[8:-4]


def program(data: bytes) -> tuple[int, dict[int, int]]:
    """The PMT PID from the PAT that must start ``data``, then the PCR PID and the streams
    ``{pid: stream_type}`` of the PMT that must follow it."""
    found = packets(data)
    if found[0].pid != 0 or not found[0].start:
        raise TSReadError("the segment does not begin with a PAT")
    table, body = section(found[0].payload)
    assert table == 0 and len(body) == 4
    pmt_pid = ((body[2] & 0x1F) << 8) | body[3]
    if found[1].pid != pmt_pid or not found[1].start:
        raise TSReadError("the PAT is not followed by its PMT")
    table, body = section(found[1].payload)
    assert table == 2
    pcr_pid = ((body[0] & 0x1F) << 8) | body[1]
    info = ((body[2] & 0x0F) << 8) | body[3]
    at = 4 + info
    streams = {}
    while at < len(body):
        streams[((body[at + 1] & 0x1F) << 8) | body[at + 2]] = body[at]
        at += 5 + (((body[at + 3] & 0x0F) << 8) | body[at + 4])
    return pcr_pid, streams


def pes_packets(data: bytes, pids: set[int]) -> list[PES]:
    """The PES packets on ``pids``, in the order they start, each checked: start code, the
    declared length against the bytes that came, marker bits."""
    found: list[PES] = []
    current: dict[int, list[Packet]] = {}

    def finish(pid: int) -> None:
        parts = current.pop(pid)
        raw = b"".join(p.payload for p in parts)
        if raw[:3] != b"\x00\x00\x01":
            raise TSReadError("PES start code missing")
        declared = int.from_bytes(raw[4:6], "big")
        if declared and declared != len(raw) - 6:
            raise TSReadError(f"PES_packet_length {declared}, {len(raw) - 6} bytes came")
        if raw[6] >> 6 != 2:
            raise TSReadError("PES header marker bits")
        flags = raw[7] >> 6
        header_length = raw[8]
        pts = timestamp(raw[9:14], 0b0010 if flags == 2 else 0b0011)
        dts = timestamp(raw[14:19], 0b0001) if flags == 3 else None
        if flags not in (2, 3):
            raise TSReadError("PES without PTS")
        found.append(
            PES(
                pid,
                raw[3],
                declared,
                pts,
                dts,
                raw[9 + header_length :],
                parts[0].random_access,
                parts[0].pcr,
                len(parts),
                len(raw) - 6,
            )
        )

    for packet in packets(data):
        if packet.pid not in pids:
            continue
        if packet.start:
            if packet.pid in current:
                finish(packet.pid)
            current[packet.pid] = []
        elif packet.pid not in current:
            raise TSReadError("PES continuation without a start")
        current[packet.pid].append(packet)
    for pid in list(current):
        finish(pid)
    return found


def adts_frames(data: bytes) -> list[tuple[dict[str, int], bytes]]:
    """The ADTS frames of an audio PES payload: header fields and raw frame."""
    frames = []
    at = 0
    while at < len(data):
        h = data[at : at + 7]
        if h[0] != 0xFF or h[1] & 0xF0 != 0xF0:
            raise TSReadError("no ADTS syncword")
        length = ((h[3] & 3) << 11) | (h[4] << 3) | (h[5] >> 5)
        fields = {
            "id": (h[1] >> 3) & 1,
            "layer": (h[1] >> 1) & 3,
            "protection_absent": h[1] & 1,
            "profile": h[2] >> 6,
            "frequency_index": (h[2] >> 2) & 0x0F,
            "channels": ((h[2] & 1) << 2) | (h[3] >> 6),
            "length": length,
            "fullness": ((h[5] & 0x1F) << 6) | (h[6] >> 2),
            "blocks": h[6] & 3,
        }
        if at + length > len(data) or length < 7:
            raise TSReadError("ADTS frame length runs past the PES")
        frames.append((fields, data[at + 7 : at + length]))
        at += length
    return frames


def annexb_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream written with 4-byte start codes."""
    if not data.startswith(b"\x00\x00\x00\x01"):
        raise TSReadError("access unit does not begin with a start code")
    return data[4:].split(b"\x00\x00\x00\x01")
