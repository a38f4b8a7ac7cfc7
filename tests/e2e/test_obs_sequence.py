"""OBS's publish sequence, replayed with our own RTMP client, played back by FFmpeg.

OBS Studio publishes like this (see shared/INTEROP.md): Set Chunk Size 4096 in the same packet
as ``connect`` (type 'nonprivate', flashVer 'FMLE/3.0 (compatible; FMSc/1.0)', supportsGoAway),
then releaseStream, FCPublish and createStream without waiting for answers, then
``publish(key?query, 'live')``; it waits for NetStream.Publish.Start, sends ``@setDataFrame``
onMetaData and the media; at the end FCUnpublish and deleteStream.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fms.amf import decode_values
from fms.rtmp.client import ClientConnection, ClientEvent, StatusReceived, StreamCreated
from fms.rtmp.messages import Media
from tests.e2e.harness import (
    ServerProcess,
    finish,
    frames_by_codec,
    probe_command,
    require_client,
    start,
)
from tests.support.flv import read_tags

pytestmark = pytest.mark.e2e


class SocketClient:
    """Drives a sans-IO ClientConnection over a blocking socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = ClientConnection(digest=False, chunk_size=4096)  # OBS: simple handshake
        self.conn.initiate()
        self.events: list[ClientEvent] = []

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def until(self, done: Callable[[ClientEvent], bool], timeout: float = 10.0) -> ClientEvent:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if done(event):
                    return event
            self.flush()
            assert time.monotonic() < deadline, f"timed out; events: {self.events}"
            data = self.sock.recv(65536)
            assert data, f"server closed the connection; events: {self.events}"
            self.events.extend(self.conn.receive_data(data))


def test_obs_publish_sequence_is_played_back_by_ffmpeg(
    server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "obs.flv"
    made = start([
        require_client("ffmpeg"), "-v", "error", "-f", "lavfi",
        "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=44100",
        "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac",
        "-f", "flv", str(source),
    ])  # fmt: skip
    assert finish(made)[0] == 0
    tags = read_tags(source)
    url = f"{server.url}/live/obs"
    player = start(probe_command(url))
    server.wait_for_line(r"play live/obs for .*waiting for publisher", timeout=15)

    obs = SocketClient(server.port)
    conn = obs.conn
    conn.connect(
        "live",
        f"{server.url}/live",
        extra={"type": "nonprivate", "supportsGoAway": True},
    )
    conn.release_stream("obs?key=s3cret")
    conn.fc_publish("obs?key=s3cret")
    conn.create_stream()
    created = obs.until(lambda e: isinstance(e, StreamCreated))
    assert isinstance(created, StreamCreated)
    sid = created.stream_id
    conn.publish(sid, "obs?key=s3cret", "live")
    obs.until(lambda e: isinstance(e, StatusReceived) and e.code == "NetStream.Publish.Start")
    server.wait_for_line(r"connect from .*FMLE/3.0 \(compatible; FMSc/1.0\)")

    sent = {8: 0, 9: 0}
    for tag in tags:
        if tag.type_id == 18:
            values = decode_values(tag.data)  # ("onMetaData", {...}) as FFmpeg wrote it
            conn.send_data(sid, ("@setDataFrame", *values))
        elif tag.type_id in sent:
            conn.send_media(sid, Media(tag.type_id, tag.timestamp, sid, tag.data))
            sent[tag.type_id] += 1
        obs.flush()
    conn.fc_unpublish("obs?key=s3cret")
    conn.delete_stream(sid)
    obs.flush()
    server.wait_for_line(r"publish stopped live/obs")
    obs.sock.close()

    status, out, err = finish(player, timeout=30)
    assert status == 0, err.decode(errors="replace")
    frames = frames_by_codec(out)
    assert frames == {"h264": 3 * 25, "aac": sent[8] - 1}  # all but the AAC sequence header
