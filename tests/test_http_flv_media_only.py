"""``GET /APP/STREAM.flv?packets=media``: the viewer gets the stream without the Enhanced RTMP
side-information tags (video Metadata, audio MultichannelConfig) that mpegts.js cannot read;
a viewer without it gets every published message. Twisted's in-memory transport, fake clock."""

from __future__ import annotations

from fms.live import flv
from fms.live.stream import LiveStream
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from tests.live.test_flvfilter import (
    AV1_INTER,
    AV1_KEY,
    AV1_METADATA,
    AV1_START,
    OPUS_FRAME,
    OPUS_MULTICHANNEL,
    OPUS_START,
)
from tests.test_http_flv import connect, dechunk, response, setup

PUBLISHED = [
    (MessageType.VIDEO, AV1_START),
    (MessageType.AUDIO, OPUS_START),
    (MessageType.AUDIO, OPUS_MULTICHANNEL),
    (MessageType.VIDEO, AV1_METADATA),
    (MessageType.VIDEO, AV1_KEY),
    (MessageType.AUDIO, OPUS_FRAME),
    (MessageType.VIDEO, AV1_INTER),
    (MessageType.VIDEO, AV1_METADATA),  # a new colorInfo mid-stream
    (MessageType.VIDEO, AV1_INTER),
]
SIDE = (AV1_METADATA, OPUS_MULTICHANNEL)


def publish(stream: LiveStream, start: int, stop: int) -> None:
    """Messages ``start``..``stop`` of PUBLISHED, 40 ms apart."""
    for n, (kind, body) in enumerate(PUBLISHED[start:stop], start):
        stream.publish_message(Media(kind, 40 * n, 1, body))


def bodies(transport_value: bytes) -> list[bytes]:
    head, _, body = transport_value.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    return [tag.payload for tag in flv.read_file(dechunk(body)[0])[1]]


def test_a_media_only_viewer_gets_every_message_but_the_side_data_tags() -> None:
    """Two viewers from the start of the publish (one asking ``?packets=media``) and two that
    join after the first side-data tags, when the late joiner's preamble replays the cached
    Metadata and MultichannelConfig: the media-only viewers get exactly the other tags."""
    site, server, _ = setup(flv_wait=5.0)
    early = [connect(site), connect(site)]
    early[0][0].dataReceived(b"GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n")
    early[1][0].dataReceived(b"GET /live/cam.flv?packets=media HTTP/1.1\r\nHost: x\r\n\r\n")
    stream = server.registry.claim("live", "cam", object())
    assert stream is not None
    publish(stream, 0, 5)
    server.registry.flush(0.0)
    late = [connect(site), connect(site)]
    late[0][0].dataReceived(b"GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n")
    late[1][0].dataReceived(b"GET /live/cam.flv?x=1&packets=media HTTP/1.1\r\nHost: x\r\n\r\n")
    server.registry.flush(1.0)
    publish(stream, 5, len(PUBLISHED))
    server.registry.flush(2.0)

    everything, media_only = bodies(early[0][1].value()), bodies(early[1][1].value())
    assert everything == [body for _, body in PUBLISHED]
    assert media_only == [body for _, body in PUBLISHED if body not in SIDE]
    late_everything, late_media_only = bodies(late[0][1].value()), bodies(late[1][1].value())
    assert AV1_METADATA in late_everything and OPUS_MULTICHANNEL in late_everything
    assert late_media_only == [body for body in late_everything if body not in SIDE]
    assert response(early[1][1])[0] == 200
