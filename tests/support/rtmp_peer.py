"""A scripted RTMP client for tests: our handshake client plus chunk encoder/decoder.

It produces the bytes a client would send and decodes what the server answers, so sans-IO and
adapter tests can drive a server connection without sockets.
"""

from __future__ import annotations

from typing import Any

from fms.rtmp.chunks import ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage
from fms.rtmp.handshake import ClientHandshake
from fms.rtmp.messages import Command, Message, SetChunkSize, decode_message, encode_message


class ScriptedClient:
    """Builds client bytes and reads server bytes."""

    def __init__(self, *, digest: bool = True, chunk_size: int = 128) -> None:
        self.handshake = ClientHandshake(digest=digest)
        self.handshake.initiate()
        self.encoder = ChunkEncoder(chunk_size)
        self.decoder = ChunkDecoder(ChunkLimits(max_command_message_size=16 * 1024 * 1024))
        self.decoder.enable_media()
        self.received: list[Message] = []
        self.raw: list[RawMessage] = []
        self._set_chunk_size = chunk_size != 128

    def hello(self) -> bytes:
        """C0+C1."""
        return self.handshake.data_to_send()

    def receive(self, data: bytes) -> bytes:
        """Take server bytes; return what the client answers (C2 during the handshake)."""
        reply = b""
        if not self.handshake.done:
            self.handshake.receive_data(data)
            reply = self.handshake.data_to_send()
            if not self.handshake.done:
                return reply
            data = self.handshake.leftover
        for raw in self.decoder.receive_data(data):
            self.raw.append(raw)
            self.received.append(decode_message(raw))
        return reply

    def send(self, message: Message, timestamp: int = 0) -> bytes:
        data = b""
        if self._set_chunk_size:
            self._set_chunk_size = False
            data = self.encoder.encode(encode_message(SetChunkSize(self.encoder.chunk_size)))
        return data + self.encoder.encode(encode_message(message, timestamp))

    def command(
        self, name: str, tid: float, obj: Any = None, *args: Any, stream_id: int = 0
    ) -> bytes:
        return self.send(Command(name, tid, obj, args, stream_id))

    def connect(self, app: str = "live", tid: float = 1.0, **extra: Any) -> bytes:
        obj = {
            "app": app,
            "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
            "tcUrl": f"rtmp://127.0.0.1:1935/{app}",
            "type": "nonprivate",
        }
        obj.update(extra)
        return self.command("connect", tid, obj)

    def commands(self) -> list[Command]:
        return [m for m in self.received if isinstance(m, Command)]

    def statuses(self) -> list[str]:
        """The ``code`` of every onStatus/_result/_error info object received, in order."""
        codes = []
        for c in self.commands():
            for value in (c.command_object, *c.arguments):
                if isinstance(value, dict) and "code" in value:
                    codes.append(str(value["code"]))
        return codes
