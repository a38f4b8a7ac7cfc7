"""A tiny ISO BMFF reader for the tests of our fMP4 muxer: boxes as (type, body) trees and
the fields of the boxes the tests check. Written apart from the muxer (it reads by the
standard's layouts, not by the muxer's helpers) so that a wrong size or field shows."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"dinf"}


@dataclass
class Box:
    kind: bytes
    body: bytes
    children: list[Box] = field(default_factory=list)

    def find(self, kind: bytes) -> list[Box]:
        return [c for c in self.children if c.kind == kind]

    def one(self, kind: bytes) -> Box:
        (found,) = self.find(kind)
        return found


def parse(data: bytes) -> list[Box]:
    """Every box of ``data``, containers opened; a size that does not add up raises."""
    boxes = []
    at = 0
    while at < len(data):
        if at + 8 > len(data):
            raise ValueError(f"{len(data) - at} stray bytes at {at}")
        size, kind = struct.unpack_from(">I4s", data, at)
        if size < 8 or at + size > len(data):
            raise ValueError(f"box {kind!r} of size {size} at {at} overruns {len(data)}")
        body = data[at + 8 : at + size]
        b = Box(kind, body)
        if kind in CONTAINERS:
            b.children = parse(body)
        boxes.append(b)
        at += size
    return boxes


@dataclass
class Run:
    track_id: int
    base_time: int
    data_offset: int
    durations: list[int]
    sizes: list[int]
    flags: list[int]
    offsets: list[int]


def read_traf(traf: Box) -> Run:
    tfhd = traf.one(b"tfhd").body
    track_id = struct.unpack_from(">I", tfhd, 4)[0]
    tfdt = traf.one(b"tfdt").body
    base = (
        struct.unpack_from(">Q", tfdt, 4)[0]
        if tfdt[0] == 1
        else struct.unpack_from(">I", tfdt, 4)[0]
    )
    trun = traf.one(b"trun").body
    version = trun[0]
    flags = int.from_bytes(trun[1:4], "big")
    count = struct.unpack_from(">I", trun, 4)[0]
    at = 8
    data_offset = 0
    if flags & 0x1:
        data_offset = struct.unpack_from(">i", trun, at)[0]
        at += 4
    if flags & 0x4:
        at += 4
    run = Run(track_id, base, data_offset, [], [], [], [])
    for _ in range(count):
        if flags & 0x100:
            run.durations.append(struct.unpack_from(">I", trun, at)[0])
            at += 4
        if flags & 0x200:
            run.sizes.append(struct.unpack_from(">I", trun, at)[0])
            at += 4
        if flags & 0x400:
            run.flags.append(struct.unpack_from(">I", trun, at)[0])
            at += 4
        if flags & 0x800:
            run.offsets.append(struct.unpack_from(">i" if version else ">I", trun, at)[0])
            at += 4
    if at != len(trun):
        raise ValueError(f"trun of {count} samples has {len(trun) - at} bytes left over")
    return run
