"""A viewer limit and a broadcast that hold for the whole server with ``fms run --workers 2``
(issue 13, item 5).

The plugins are written as ``docs/plugins.md`` says: its viewer limit, taken from the page
as written (a seat per player: ``app.take_seat(name, max_players, client)``), and an on-air
notifier that broadcasts ``onAir`` from the ``published`` notification. Players go to each
worker's own port (``[server] worker_ports``), so both workers serve some.

What must hold: six players starting at once against ``max_players = 2`` let exactly 2 in
(they decode the stream) and refuse 4 (``NetStream.Play.Failed``, no frame), round after round;
players waiting for a stream before it is published hold seats too (3 waiting against 2:
exactly 2 play once FFmpeg publishes); a broadcast reaches the clients of both workers with its
arguments intact, and ``everywhere=False`` only those of its own worker. Without seats shared
by the workers (each worker counting its own), 3 players per worker would let 4 in.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fms.rtmp.client import CallReceived, StatusReceived
from tests.e2e.harness import ffmpeg_publish_command, finish, require_client, start
from tests.e2e.test_plugin_doc import block
from tests.e2e.test_workers import Workers
from tests.hostile.support import Client

pytestmark = pytest.mark.e2e

LIMIT = 2
ROUNDS = 5
PER_WORKER = 3
"""Players per worker in the six-at-once rounds: more than the limit on each worker."""

REFUSAL = "this stream has all the players it can take"
"""The documented plugin's refusal."""

VIEWER_LIMIT = block("plugins/viewerlimit.py")
"""The viewer limit of docs/plugins.md, as written there."""

ON_AIR = '''
from fms.apps.api import Plugin


class OnAir(Plugin):
    """Tells every client when a stream goes on air."""

    def published(self, stream):
        app = stream.publisher.application
        app.broadcast("onAirHere", stream.name, everywhere=False)
        app.broadcast("onAir", stream.name, "Café ☕ 直播", 42, -2.5, True, None,
                      {"nested": {"list": [1, "ü", {"deep": "ß"}], "n": 2.25}})
'''

ARGUMENTS = (
    "Café ☕ 直播", 42, -2.5, True, None,
    {"nested": {"list": [1, "ü", {"deep": "ß"}], "n": 2.25}},
)  # fmt: skip
"""What ``onAir`` carries after the stream name (AMF0 numbers come back as floats, equal)."""


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    (tmp_path / "viewerlimit.py").write_text(VIEWER_LIMIT, encoding="utf-8")
    (tmp_path / "onair.py").write_text(ON_AIR, encoding="utf-8")
    extra = (
        f'[[apps.live.plugins]]\nuse = "viewerlimit"\nmax_players = {LIMIT}\n'
        '[[apps.live.plugins]]\nuse = "onair"\n'
    )
    w = Workers(tmp_path, extra)
    try:
        yield w
    finally:
        status = w.server.stop()
    assert status == 0, w.server.log()


def player_command(url: str, seconds: float) -> list[str]:
    """FFmpeg playing ``url`` for ``seconds`` of media, decoding every video frame and
    writing one line per frame (framecrc) to stdout."""
    return [
        require_client("ffmpeg"), "-hide_banner", "-loglevel", "error",
        "-i", url, "-t", str(seconds), "-map", "0:v:0", "-f", "framecrc", "-",
    ]  # fmt: skip


def decoded_frames(stdout: bytes) -> int:
    return sum(1 for line in stdout.decode().splitlines() if line and not line.startswith("#"))


def start_together(commands: list[list[str]]) -> list[subprocess.Popen[bytes]]:
    """Start every command before any is waited for."""
    return [start(command) for command in commands]


def play_lines(workers: Workers, name: str) -> tuple[list[str], list[str]]:
    """(accepted, refused) play log lines of ``live/name``, of both workers."""
    accepted = [
        line
        for line in workers.server.lines
        if re.search(rf"\] play live/{name} for 127\.0\.0\.1:\d+($| \()", line)
    ]
    refused = [
        line
        for line in workers.server.lines
        if f"play live/{name} for " in line and REFUSAL in line
    ]
    return accepted, refused


def test_six_players_at_once_against_a_limit_of_two_let_exactly_two_in(
    workers: Workers,
) -> None:
    for round_ in range(ROUNDS):
        name = f"cam{round_}"
        publisher = start(ffmpeg_publish_command(f"{workers.url(0)}/live/{name}", 60, audio=False))
        try:
            workers.line(0, f"publish started live/{name} from 127")
            workers.line(1, f"publish started live/{name} from .* via worker 0")
            urls = [f"{workers.url(w)}/live/{name}" for w in (0, 1) for _ in range(PER_WORKER)]
            players = start_together([player_command(url, 2) for url in urls])
            results = [finish(p, timeout=60) for p in players]
        finally:
            publisher.kill()
            publisher.wait(10)
        played = [(status, decoded_frames(out)) for status, out, _ in results]
        winners = [frames for status, frames in played if status == 0 and frames > 0]
        losers = [err for (status, out, err) in results if status != 0 and decoded_frames(out) == 0]
        assert len(winners) == LIMIT and len(losers) == 2 * PER_WORKER - LIMIT, (round_, played)
        assert all(REFUSAL in err.decode(errors="replace") for err in losers), losers
        assert all(frames >= 25 for frames in winners), played  # 2 s at 25 fps, at least 1 s
        accepted, refused = play_lines(workers, name)
        assert (len(accepted), len(refused)) == (LIMIT, 2 * PER_WORKER - LIMIT), (
            accepted,
            refused,
        )
        for worker in (0, 1):  # each worker served players of the round
            assert any(f" w{worker} [" in line for line in accepted + refused)


def test_six_raw_plays_sent_in_the_same_instant_let_exactly_two_in(workers: Workers) -> None:
    """The tightest race: six connections, ready on both workers, send ``play`` back to back
    (microseconds apart), several times."""
    for round_ in range(ROUNDS):
        name = f"raw{round_}"
        clients = [Client(workers.ports[w]).connect() for w in (0, 1) for _ in range(PER_WORKER)]
        try:
            sids = [client.create_stream() for client in clients]
            for client, sid in zip(clients, sids, strict=True):
                client.conn.play(sid, name)
            for client in clients:
                client.flush()
            answers = [play_answer(client, sid) for client, sid in zip(clients, sids, strict=True)]
        finally:
            for client in clients:
                client.close()
        codes = sorted(answer.code for answer in answers)
        assert codes == ["NetStream.Play.Failed"] * 4 + ["NetStream.Play.Start"] * 2, codes
        refused = [a for a in answers if a.code == "NetStream.Play.Failed"]
        assert all(a.info.get("description") == REFUSAL for a in refused), refused


def play_answer(client: Client, sid: int) -> StatusReceived:
    event = client.until(
        lambda e: (
            isinstance(e, StatusReceived)
            and e.stream_id == sid
            and e.code in ("NetStream.Play.Start", "NetStream.Play.Failed")
        ),
        timeout=30.0,
    )
    assert isinstance(event, StatusReceived)
    return event


def test_players_waiting_for_a_publisher_hold_seats_on_every_worker(workers: Workers) -> None:
    """Three players wait for 'next' (two on worker 0, one on worker 1) against a limit of 2:
    one is refused at once, and once FFmpeg publishes, the two others decode it."""
    urls = [f"{workers.url(w)}/live/next" for w in (0, 0, 1)]
    players = start_together([player_command(url, 3) for url in urls])
    workers.server.wait_for_lines(r"play live/next for .*\(waiting for publisher\)", LIMIT, 30)
    workers.server.wait_for_line(rf"play live/next for .*{REFUSAL}", 30)
    publisher = start(ffmpeg_publish_command(f"{workers.url(1)}/live/next", 8, audio=False))
    try:
        results = [finish(p, timeout=60) for p in players]
    finally:
        publisher.kill()
        publisher.wait(10)
    played = [(status, decoded_frames(out)) for status, out, _ in results]
    assert sorted(frames > 0 for _, frames in played) == [False, True, True], played
    assert [status == 0 for status, frames in played if frames > 0] == [True, True], played
    assert all(frames >= 3 * 25 - 1 for _, frames in played if frames), played  # all 3 s
    [refused] = [err for status, out, err in results if decoded_frames(out) == 0]
    assert REFUSAL in refused.decode(errors="replace")
    accepted, refused_lines = play_lines(workers, "next")
    assert (len(accepted), len(refused_lines)) == (LIMIT, 1), (accepted, refused_lines)


def test_a_broadcast_reaches_the_clients_of_both_workers(workers: Workers) -> None:
    listeners = [Client(workers.ports[w]).connect() for w in (0, 1)]
    try:
        publisher = start(ffmpeg_publish_command(f"{workers.url(0)}/live/show", 2, audio=False))
        calls = [on_air(listener) for listener in listeners]
        assert finish(publisher)[0] == 0
    finally:
        for listener in listeners:
            listener.close()
    for received in calls:
        assert received[-1] == ["show", *ARGUMENTS], received
    here, there = ([c[0] for c in calls_of(listener)] for listener in listeners)
    assert here == ["onAirHere", "onAir"]  # worker 0's own client: both, in order
    assert there == ["onAir"]  # worker 1: the broadcast, not the one kept on worker 0


def on_air(client: Client) -> list[Any]:
    """Wait for ``onAir``; what it carried."""
    event = client.until(lambda e: isinstance(e, CallReceived) and e.name == "onAir", 30.0)
    assert isinstance(event, CallReceived)
    return [list(event.command.arguments)]


def calls_of(client: Client) -> list[tuple[str, list[Any]]]:
    return [
        (e.name, list(e.command.arguments))
        for e in client.events
        if isinstance(e, CallReceived) and e.name.startswith("onAir")
    ]


def test_the_documented_unit_test_of_the_viewer_limit_passes(tmp_path: Path) -> None:
    (tmp_path / "viewerlimit.py").write_text(VIEWER_LIMIT, encoding="utf-8")
    test_file = tmp_path / "test_viewerlimit.py"
    test_file.write_text(block("plugins/test_viewerlimit.py"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_seats_of_a_killed_worker_are_free_at_once(workers: Workers) -> None:
    """Two players on worker 1 hold both seats; SIGKILL worker 1 (no cleanup runs: the kernel
    drops its locks) and a player on worker 0 that was refused gets one."""
    holders = [Client(workers.ports[1]).connect() for _ in range(LIMIT)]
    late = Client(workers.ports[0]).connect()
    try:
        for holder in holders:
            holder.play("held")
        sid = late.create_stream()
        late.conn.play(sid, "held")
        late.flush()
        assert play_answer(late, sid).code == "NetStream.Play.Failed"
        os.kill(workers.pid(1), signal.SIGKILL)
        workers.server.wait_for_line(r"worker 1 \(pid \d+\) ended \(signal 9\)")
        late.events.clear()  # the client's waits read its events from the first
        sid = late.create_stream()
        late.conn.play(sid, "held")
        late.flush()
        answer = play_answer(late, sid)
        assert answer.code == "NetStream.Play.Start", (sid, answer.info)
    finally:
        for client in (*holders, late):
            client.close()
