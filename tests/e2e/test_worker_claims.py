"""One name, one publisher, across the workers of ``fms run --workers 2`` (issue 20).

Two publishers of the same name, one on each worker's own port, send ``publish`` at the same
moment: exactly one gets ``NetStream.Publish.Start``, the other ``NetStream.Publish.BadName``
with the same log line and description as on one process, and players on both workers get the
winner's media (and never hear of the loser). Without a claim shared by the workers both
publishes are accepted: each worker's registry is free when its own publish is decided, the
relay links that would tell it otherwise take milliseconds to arrive.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fms.rtmp.client import MediaArrived, StatusReceived
from tests.e2e.test_workers import Workers
from tests.hostile.support import AVC_HEADER, Client

pytestmark = pytest.mark.e2e

ROUNDS = 20


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path)
    try:
        yield w
    finally:
        status = w.server.stop()
    assert status == 0, w.server.log()


def keyframe(worker: int) -> bytes:
    """A keyframe whose payload says which worker's publisher sent it."""
    return b"\x17\x01\x00\x00\x00" + f"from worker {worker};".encode() * 20


def publish_answer(client: Client, sid: int) -> StatusReceived:
    event = client.until(
        lambda e: (
            isinstance(e, StatusReceived)
            and e.stream_id == sid
            and e.code.startswith("NetStream.Publish.")
        ),
        timeout=15.0,
    )
    assert isinstance(event, StatusReceived)
    return event


def test_two_publishes_of_one_name_at_the_same_moment_on_two_workers_admit_one(
    workers: Workers,
) -> None:
    winners = []
    for round_ in range(ROUNDS):
        name = f"race{round_}"
        players = [Client(port).connect() for port in workers.ports]
        player_sids = [player.play(name) for player in players]
        publishers = [Client(port).connect() for port in workers.ports]
        sids = [publisher.create_stream() for publisher in publishers]
        for publisher, sid in zip(publishers, sids, strict=True):
            publisher.conn.publish(sid, name)
        # Both publish commands leave within microseconds, alternating which goes first; the
        # servers take far longer than that to decide one.
        order = (0, 1) if round_ % 2 == 0 else (1, 0)
        for index in order:
            publishers[index].flush()
        answers = [publish_answer(p, sid) for p, sid in zip(publishers, sids, strict=True)]
        codes = [answer.code for answer in answers]
        assert sorted(codes) == ["NetStream.Publish.BadName", "NetStream.Publish.Start"], (
            f"round {round_}: {codes}"
        )
        winner = codes.index("NetStream.Publish.Start")
        loser = 1 - winner
        winners.append(winner)
        assert answers[loser].level == "error"
        assert answers[loser].info["description"] == f"{name} is already being published."
        workers.line(
            loser,
            rf"refusing publish live/{name} from 127\.0\.0\.1:{publishers[loser].port}: "
            "already published",
        )
        # Both send a keyframe: the winner's reaches the players of both workers, the loser's
        # (not publishing) reaches nobody.
        for index, (publisher, sid) in enumerate(zip(publishers, sids, strict=True)):
            publisher.send_video(sid, 0, AVC_HEADER)
            publisher.send_video(sid, 0, keyframe(index))
        for player, sid in zip(players, player_sids, strict=True):
            event = player.until(
                lambda e, sid=sid: (
                    isinstance(e, MediaArrived)
                    and e.stream_id == sid
                    and e.message.payload[1] == 1  # a frame, not the sequence header
                ),
                timeout=15.0,
            )
            assert isinstance(event, MediaArrived)
            assert event.message.payload == keyframe(winner)
            notices = [
                e.code
                for e in player.events
                if isinstance(e, StatusReceived) and "PublishNotify" in e.code
            ]
            assert notices == ["NetStream.Play.PublishNotify"]  # the loser never showed up
        for client in (*publishers, *players):
            client.close()
        workers.line(winner, rf"publish stopped live/{name} from 127\.0\.0\.1:\d+$")
    print(f"winners by worker over {ROUNDS} rounds: {winners.count(0)} / {winners.count(1)}")
    # No relay link was refused: the loser never held the name where a link could meet it.
    assert not re.search(r"refused the relay of live/race", workers.server.log())


def test_a_name_held_by_a_killed_worker_can_be_published_on_the_other(workers: Workers) -> None:
    """The claim dies with the worker that held it (even by SIGKILL, which runs no cleanup)."""
    holder = Client(workers.ports[0]).connect()
    holder.publish("orphan")
    workers.line(1, r"publish started live/orphan from .* via worker 0")
    refused = Client(workers.ports[1]).connect()
    sid = refused.create_stream()
    refused.conn.publish(sid, "orphan")
    refused.flush()
    assert publish_answer(refused, sid).code == "NetStream.Publish.BadName"
    refused.close()
    os.kill(workers.pid(0), signal.SIGKILL)
    workers.server.wait_for_line(r"worker 0 \(pid \d+\) ended \(signal 9\)")
    workers.line(1, r"publish stopped live/orphan from .* via worker 0")
    heir = Client(workers.ports[1]).connect()
    heir.publish("orphan")
    holder.close()
    # Worker 0 comes back and gets the stream from worker 1 through the relay.
    workers.server.wait_for_lines(r"worker 0 alone on", 2, timeout=30.0)
    workers.line(0, r"publish started live/orphan from .* via worker 1", timeout=30.0)
    heir.close()
    workers.line(1, r"publish stopped live/orphan from 127\.0\.0\.1:\d+$")
