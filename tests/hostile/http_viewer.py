"""An HTTP-FLV viewer for the hostile suite's good traffic: a raw socket that sends
``GET /live/NAME.flv`` and reads the chunked FLV response incrementally, checking every size
field as it goes, and reports each video tag as a :class:`MediaArrived`, so that
:mod:`tests.hostile.good_traffic` counts its frames as it counts an RTMP player's."""

from __future__ import annotations

from fms.live import flv
from fms.rtmp.constants import MessageType
from fms.rtmp.events import ClientEvent, MediaArrived
from fms.rtmp.messages import Media
from tests.hostile.support import local_port, open_socket

FLV_HEADER_SIZE = 13
"""The file header and PreviousTagSize0 (bytes)."""


class ChunkedFLV:
    """Bytes of an HTTP/1.1 chunked ``video/x-flv`` response in, video tags out. Raises
    ``RuntimeError`` on anything but a 200 with a well-formed chunked FLV body."""

    def __init__(self) -> None:
        self._raw = b""
        self._head_done = False
        self._chunk_left = 0
        self._body = b""
        self._header_seen = False
        self.tags = 0
        self.bytes = 0
        """FLV bytes received (header included)."""

    def receive_data(self, data: bytes, now: float) -> list[ClientEvent]:
        self._raw += data
        if not self._head_done:
            head, sep, rest = self._raw.partition(b"\r\n\r\n")
            if not sep:
                return []
            status = head.split(b"\r\n", 1)[0]
            if not status.startswith(b"HTTP/1.1 200 ") or b"chunked" not in head.lower():
                raise RuntimeError(f"the good HTTP-FLV viewer was answered {head[:200]!r}")
            self._head_done, self._raw = True, rest
        self._dechunk()
        return self._tags()

    def _dechunk(self) -> None:
        """Move whole or partial chunk data from ``_raw`` to ``_body``. ``_chunk_left`` is
        the data still to come of the current chunk, -1 while its CRLF is awaited, 0 while
        a size line is."""
        while self._raw:
            if self._chunk_left > 0:
                take = self._raw[: self._chunk_left]
                self._raw = self._raw[len(take) :]
                self._body += take
                self.bytes += len(take)
                self._chunk_left -= len(take)
                if self._chunk_left == 0:
                    self._chunk_left = -1
            elif self._chunk_left < 0:
                if len(self._raw) < 2:
                    return
                if self._raw[:2] != b"\r\n":
                    raise RuntimeError("a chunk is not followed by CRLF")
                self._raw, self._chunk_left = self._raw[2:], 0
            else:
                line, sep, rest = self._raw.partition(b"\r\n")
                if not sep:
                    return
                size = int(line, 16)
                if size == 0:
                    raise RuntimeError("the good HTTP-FLV viewer's response ended")
                self._raw, self._chunk_left = rest, size

    def _tags(self) -> list[ClientEvent]:
        events: list[ClientEvent] = []
        if not self._header_seen:
            if len(self._body) < FLV_HEADER_SIZE:
                return events
            flv.read_file(self._body[:FLV_HEADER_SIZE])  # checks the file header
            self._body = self._body[FLV_HEADER_SIZE:]
            self._header_seen = True
        while len(self._body) >= flv.TAG_HEADER_SIZE:
            size = int.from_bytes(self._body[1:4], "big")
            end = flv.TAG_HEADER_SIZE + size + 4
            if len(self._body) < end:
                break
            if int.from_bytes(self._body[end - 4 : end], "big") != flv.TAG_HEADER_SIZE + size:
                raise RuntimeError("a PreviousTagSize does not match its tag")
            tag_type, payload = self._body[0], self._body[flv.TAG_HEADER_SIZE : end - 4]
            self._body = self._body[end:]
            self.tags += 1
            if tag_type == flv.TAG_VIDEO:
                events.append(MediaArrived(1, Media(MessageType.VIDEO, 0, 1, payload)))
        return events

    def data_to_send(self) -> bytes:
        return b""


class HTTPViewer:
    """What :class:`tests.hostile.good_traffic.Traffic` needs of its player: ``sock``,
    ``port``, ``conn`` (:class:`ChunkedFLV`) and ``close``."""

    def __init__(self, http_port: int, name: str) -> None:
        self.sock = open_socket(http_port)
        self.port = local_port(self.sock)
        self.conn = ChunkedFLV()
        self.sock.sendall(f"GET /live/{name}.flv HTTP/1.1\r\nHost: good\r\n\r\n".encode())

    def close(self) -> None:
        self.sock.close()
