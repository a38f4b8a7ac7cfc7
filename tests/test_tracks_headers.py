"""Enhanced RTMP v2 tracks: the tag reader (fms.live.tracks), the per-track header cache
(fms.live.headers) and what a late joiner of a LiveStream gets, over Hypothesis-generated
messages of every packet type (SequenceStart, CodedFrames, CodedFramesX, SequenceEnd, Metadata,
MPEG2TSSequenceStart; wrapped in Multitrack of every kind and in ModEx prefixes), audio and
video. The messages are built here from the specification's bit layout, independently of the
reader under test."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from fms.live import tracks as tracks_module
from fms.live.headers import TrackHeaders
from fms.live.media import describe
from fms.live.tracks import Role, split
from fms.rtmp.messages import Media
from tests.support.live_sink import AVC_HEADER, Sink, published

VIDEO_FOURCCS = ["avc1", "hvc1", "av01", "vp09", "vp08", "vvc1"]
AUDIO_FOURCCS = ["Opus", "fLaC", "ac-3", "ec-3", ".mp3", "mp4a"]
# packet type numbers of the specification
VIDEO_TYPES = {"start": 0, "frames": 1, "end": 2, "framesx": 3, "metadata": 4, "ts-start": 5}
AUDIO_TYPES = {"start": 0, "frames": 1, "end": 2, "metadata": 4}  # 4: MultichannelConfig
ROLES = {"start": Role.CONFIG, "ts-start": Role.CONFIG, "frames": Role.FRAMES,
         "framesx": Role.FRAMES, "end": Role.END, "metadata": Role.METADATA}  # fmt: skip
KINDS = [None, 0, 1, 2]  # no multitrack, OneTrack, ManyTracks, ManyTracksManyCodecs


@dataclass(frozen=True)
class Packet:
    """One generated message: ``tracks`` is ((track id, fourcc, body), ...)."""

    kind: str  # "audio" or "video"
    packet: str  # a key of VIDEO_TYPES / AUDIO_TYPES
    frame_type: int
    multitrack: int | None
    tracks: tuple[tuple[int, str, bytes], ...]
    modex: tuple[bytes, ...] = ()

    def payload(self) -> bytes:
        types = VIDEO_TYPES if self.kind == "video" else AUDIO_TYPES
        packet_type = types[self.packet]
        wrapper = 6 if self.kind == "video" else 5  # the Multitrack packet type
        outer = wrapper if self.multitrack is not None else packet_type
        head = [outer if not self.modex else 7]
        out = bytearray()
        if self.kind == "video":
            out.append(0x80 | (self.frame_type << 4) | head[0])
        else:
            out.append(0x90 | head[0])
        for i, data in enumerate(self.modex):
            size = len(data) - 1
            if size < 255:
                out.append(size)
            else:
                out += bytes((255,)) + (len(data) - 1).to_bytes(2, "big")
            out += data
            last = i == len(self.modex) - 1
            out.append(outer if last else 7)  # ModEx type 0 (TimestampOffsetNano), next type
        if self.multitrack is None:
            (_track, fourcc, body) = self.tracks[0]
            return bytes(out) + fourcc.encode() + body
        out.append((self.multitrack << 4) | packet_type)
        if self.multitrack != 2:
            out += self.tracks[0][1].encode()
        for track_id, fourcc, body in self.tracks:
            if self.multitrack == 2:
                out += fourcc.encode()
            out.append(track_id)
            if self.multitrack != 0:
                out += len(body).to_bytes(3, "big")
            out += body
        return bytes(out)

    def message(self, ts: int = 0) -> Media:
        return Media(9 if self.kind == "video" else 8, ts, 1, self.payload())


@st.composite
def packets(
    draw: st.DrawFn,
    kind: str | None = None,
    packet: str | None = None,
    max_track: int = 255,
) -> Packet:
    kind = kind or draw(st.sampled_from(["audio", "video"]))
    types = VIDEO_TYPES if kind == "video" else AUDIO_TYPES
    packet = packet or draw(st.sampled_from(sorted(types)))
    fourccs = VIDEO_FOURCCS if kind == "video" else AUDIO_FOURCCS
    multitrack = draw(st.sampled_from(KINDS))
    count = 1 if multitrack in (None, 0) else draw(st.integers(1, 4))
    ids = draw(st.lists(st.integers(0, max_track), min_size=count, max_size=count, unique=True))
    if multitrack is None:
        ids = [0]
    shared = draw(st.sampled_from(fourccs))
    tracks = tuple(
        (
            track_id,
            draw(st.sampled_from(fourccs)) if multitrack == 2 else shared,
            draw(st.binary(min_size=1, max_size=40)),
        )
        for track_id in ids
    )
    frame_type = draw(st.sampled_from([1, 2, 3, 4])) if kind == "video" else 0
    modex = tuple(draw(st.lists(st.binary(min_size=1, max_size=300), max_size=2)))
    return Packet(kind, packet, frame_type, multitrack, tracks, modex)


# ------------------------------------------------------------------------------ the reader


@given(packets())
def test_every_track_of_every_packet_type_and_multitrack_kind_is_read(packet: Packet) -> None:
    payload = packet.payload()
    tagged = split(9 if packet.kind == "video" else 8, payload)
    assert tagged.role is ROLES[packet.packet]
    assert tagged.multitrack == packet.multitrack
    assert tagged.frame_type == packet.frame_type
    got = tuple((t.track_id, t.codec, payload[t.start : t.end]) for t in tagged.tracks)
    assert got == packet.tracks


@given(st.sampled_from([8, 9]), st.binary(max_size=64))
def test_arbitrary_bytes_are_read_without_raising(type_id: int, payload: bytes) -> None:
    tagged = split(type_id, payload)
    for track in tagged.tracks:
        end = len(payload) if track.end is None else track.end
        assert 0 <= track.start <= end <= len(payload)


@given(st.one_of(packets(), st.tuples(st.sampled_from(["audio", "video"]), st.binary(max_size=12))))
def test_reading_from_the_cached_prefix_equals_reading_the_whole_payload(
    sample: Packet | tuple[str, bytes],
) -> None:
    """Most payloads are read once per distinct prefix (a cache): the reading must be the one
    the whole payload gives."""
    if isinstance(sample, Packet):
        type_id, payload = (9 if sample.kind == "video" else 8), sample.payload()
    else:
        type_id, payload = (9 if sample[0] == "video" else 8), sample[1]
    assert split(type_id, payload) == tracks_module._split(type_id, payload)


@given(packets(kind="video"))
def test_a_keyframe_is_coded_frames_with_frame_type_1_whatever_the_exheader_bit(
    packet: Packet,
) -> None:
    """The ExHeader bit (bit 7) is masked off: an enhanced keyframe's first byte is 0x9X."""
    info = describe(9, packet.payload())
    coded = packet.packet in ("frames", "framesx")
    assert info.keyframe == (coded and packet.frame_type == 1)
    assert info.sequence_header == (packet.packet in ("start", "ts-start"))
    assert info.track == min(t[0] for t in packet.tracks)


# ------------------------------------------------------------------------------ the cache


def config_sequences() -> st.SearchStrategy[list[Packet]]:
    """Messages of every packet type on a few tracks (so that they replace and end each other),
    audio and video, every multitrack kind."""
    return st.lists(packets(max_track=3), min_size=1, max_size=25)


def model(sequence: list[Packet]) -> dict[tuple[str, int, str, str], bytes]:
    """What a newcomer must get: the last configuration and the last metadata body of every
    (kind, track, codec) not ended since."""
    held: dict[tuple[str, int, str, str], bytes] = {}
    for packet in sequence:
        for track_id, fourcc, body in packet.tracks:
            if packet.packet == "end":
                held.pop((packet.kind, track_id, fourcc, "config"), None)
                held.pop((packet.kind, track_id, fourcc, "metadata"), None)
            elif packet.packet in ("start", "ts-start"):
                held[(packet.kind, track_id, fourcc, "config")] = body
            elif packet.packet == "metadata":
                held[(packet.kind, track_id, fourcc, "metadata")] = body
    return held


def replayed(messages: list[Media]) -> dict[tuple[str, int, str, str], bytes]:
    out: dict[tuple[str, int, str, str], bytes] = {}
    for message in messages:
        tagged = split(message.type_id, message.payload)
        slot = {Role.CONFIG: "config", Role.METADATA: "metadata"}[tagged.role]
        for t in tagged.tracks:
            key = (tagged.kind, t.track_id, t.codec, slot)
            assert key not in out, f"{key} replayed twice"
            out[key] = message.payload[t.start : t.end]
    return out


@given(config_sequences())
def test_the_cache_holds_every_tracks_last_configuration_and_metadata(
    sequence: list[Packet],
) -> None:
    headers = TrackHeaders()
    for packet in sequence:
        message = packet.message()
        headers.update(message, describe(message.type_id, message.payload))
    assert replayed(headers.messages()) == model(sequence)


@given(config_sequences())
def test_update_says_changed_exactly_when_what_a_newcomer_gets_changed(
    sequence: list[Packet],
) -> None:
    headers = TrackHeaders()
    for packet in sequence:
        # the bytes a newcomer is sent, ModEx prefixes included: a header resent with another
        # ModEx prefix (e.g. a new nanosecond offset) is a change
        before = [m.payload for m in headers.messages()]
        message = packet.message()
        changed = headers.update(message, describe(message.type_id, message.payload))
        assert changed == ([m.payload for m in headers.messages()] != before)


@given(config_sequences())
def test_every_cached_message_matches_and_a_changed_one_does_not(sequence: list[Packet]) -> None:
    headers = TrackHeaders()
    for packet in sequence:
        message = packet.message()
        headers.update(message, describe(message.type_id, message.payload))
    for message in headers.messages():
        assert headers.matches(message)
        assert not headers.matches(Media(message.type_id, 0, 1, message.payload + b"x"))


@given(config_sequences(), st.booleans(), st.booleans())
def test_a_late_joiner_gets_every_tracks_headers_before_any_frame(
    sequence: list[Packet], audio: bool, video: bool
) -> None:
    stream = published()
    for ts, packet in enumerate(sequence):
        stream.publish_message(packet.message(ts))
    sink = Sink()
    stream.add_player(sink, 1, audio=audio, video=video)
    stream.flush(0.0)
    got = [Media(m.type_id, m.timestamp, m.stream_id, m.payload) for m in sink.messages()]
    roles = [split(m.type_id, m.payload).role for m in got]
    preamble = got[: len([r for r in roles if r in (Role.CONFIG, Role.METADATA)])]
    assert all(r in (Role.CONFIG, Role.METADATA) for r in roles[: len(preamble)])
    wanted = {k: v for k, v in model(sequence).items() if {"audio": audio, "video": video}[k[0]]}
    assert replayed(preamble) == wanted


# ------------------------------------------------------------------ the stream, by example


def onetrack(track_id: int, packet: str, body: bytes, frame_type: int = 1) -> Media:
    return Packet("video", packet, frame_type, 0, ((track_id, "hvc1", body),)).message()


def test_a_manytracks_header_is_kept_per_track_and_one_track_replaces_its_own() -> None:
    headers = TrackHeaders()
    both = Packet("video", "start", 1, 1, ((0, "avc1", b"zero"), (1, "avc1", b"one"))).message()
    headers.update(both, describe(9, both.payload))
    one = Packet("video", "start", 1, 0, ((1, "avc1", b"ONE"),)).message()
    assert headers.update(one, describe(9, one.payload))
    got = replayed(headers.messages())
    assert got == {("video", 0, "avc1", "config"): b"zero", ("video", 1, "avc1", "config"): b"ONE"}


def test_a_keyframe_of_another_track_does_not_restart_the_gop() -> None:
    """The GOP cache starts at a keyframe of the main track (track 0): a late joiner must not
    start at track 1's keyframe with track 0 in the middle of its GOP."""
    stream = published()
    stream.publish_message(Media(9, 0, 1, AVC_HEADER))
    stream.publish_message(onetrack(1, "start", b"cfg"))
    stream.publish_message(Media(9, 0, 1, b"\x17\x01\x00\x00\x00key0"))
    stream.publish_message(onetrack(1, "frames", b"\x00\x00\x00key1"))
    stream.publish_message(Media(9, 40, 1, b"\x27\x01\x00\x00\x00inter0"))
    stream.publish_message(onetrack(1, "frames", b"\x00\x00\x00late-key1"))
    gop = [m.payload for m in stream.replay()[2:]]
    assert gop[0] == b"\x17\x01\x00\x00\x00key0"
    assert len(gop) == 4


def test_without_track_0_the_lowest_configured_track_leads() -> None:
    stream = published()
    stream.publish_message(onetrack(3, "start", b"cfg3"))
    stream.publish_message(onetrack(2, "start", b"cfg2"))
    stream.publish_message(onetrack(3, "frames", b"key3"))
    stream.publish_message(onetrack(2, "frames", b"key2"))
    assert [split(9, m.payload).tracks[0].track_id for m in stream.replay()] == [3, 2, 2]


def test_a_player_resuming_after_a_track_changed_gets_the_new_header() -> None:
    """A header change bumps ``headers_version``; a paused player resumes at the next main
    keyframe after every track's headers, the changed one included."""
    stream = published()
    stream.publish_message(Media(9, 0, 1, AVC_HEADER))
    stream.publish_message(onetrack(1, "start", b"old"))
    stream.publish_message(Media(9, 0, 1, b"\x17\x01\x00\x00\x00key0"))
    sink = Sink()
    player = stream.add_player(sink, 1)
    stream.flush(0.0)
    stream.set_paused(player, True)
    version = stream.headers_version
    stream.publish_message(onetrack(1, "start", b"old"))  # an identical resend changes nothing
    assert stream.headers_version == version
    stream.publish_message(onetrack(1, "start", b"new"))
    assert stream.headers_version == version + 1
    sink.writes.clear()
    stream.set_paused(player, False)
    stream.publish_message(Media(9, 80, 1, b"\x17\x01\x00\x00\x00key80"))
    stream.flush(1.0)
    got = [m.payload for m in sink.messages()]
    assert got[-1] == b"\x17\x01\x00\x00\x00key80"
    assert AVC_HEADER in got[:-1] and onetrack(1, "start", b"new").payload in got[:-1]


def test_sequence_end_forgets_the_track() -> None:
    stream = published()
    stream.publish_message(onetrack(1, "start", b"cfg"))
    stream.publish_message(onetrack(1, "metadata", b"colorInfo"))
    stream.publish_message(onetrack(1, "end", b""))
    assert stream.headers.messages() == []
