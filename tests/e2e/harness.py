"""Run the real ``fms`` server process and real RTMP clients for end-to-end tests.

Waits are on observable events (a log line, a process exit) with timeouts, never bare sleeps.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.ci import IN_CI

LISTENING = re.compile(r"listening on (rtmp://[^\s\"]+)")
"""The listening line, in the text form or inside a JSON line (``[server] log_format``)."""


def require_client(name: str) -> str:
    """The path of a real client program; in CI a missing one fails the test, never skips it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (./scripts/test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _child_setup(extra: Callable[[], None] | None) -> None:
    """In the server's process before exec: SIGINT back to its default. A shell runs background
    jobs with SIGINT ignored, and an ignored signal stays ignored across exec, so a suite started
    in the background would otherwise start servers that cannot be stopped with SIGINT.
    ``extra`` is the test's own setup (e.g. a lower RLIMIT_NOFILE for the EMFILE test)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if extra is not None:
        extra()


class ServerProcess:
    """``python -m fms run`` on 127.0.0.1 and a free port, with its log collected line by line."""

    def __init__(
        self,
        *args: str,
        config: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
        stdout: Path | None = None,
    ) -> None:
        """``stdout``: a file that receives the server's standard output (discarded without)."""
        command = [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", "0"]
        if config is not None:
            command += ["--config", str(config)]
        command += list(args)
        out = None if stdout is None else stdout.open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL if out is None else out,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
            preexec_fn=functools.partial(_child_setup, preexec_fn),
        )
        if out is not None:
            out.close()  # the child has its own copy of the descriptor
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_listening()
        self.port = int(self.url.rsplit(":", 1)[1])

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def _wait_listening(self, timeout: float = 20.0) -> str:
        line = self.wait_for_line(LISTENING, timeout)
        match = LISTENING.search(line)
        assert match is not None
        return match.group(1)

    def wait_for_line(self, pattern: re.Pattern[str] | str, timeout: float = 10.0) -> str:
        """Block until a log line matches ``pattern`` (searching lines already seen first)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in list(self.lines):
            if regex.search(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no log line matched {regex.pattern!r} in {timeout}s; log:\n" + self.log()
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"server exited ({self.process.poll()}) before a line matched "
                    f"{regex.pattern!r}; log:\n" + self.log()
                )
            if regex.search(line):
                return line

    def wait_for_lines(
        self, pattern: re.Pattern[str] | str, count: int, timeout: float = 20.0
    ) -> list[str]:
        """Block until ``count`` distinct log lines match ``pattern``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in list(self.lines) if regex.search(line)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{len(found)} of {count} log lines matched {regex.pattern!r}; log:\n"
                    + self.log()
                )
            try:
                if self._queue.get(timeout=remaining) is None:
                    raise AssertionError("server exited; log:\n" + self.log())
            except queue.Empty:
                continue

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                "server did not stop within the timeout; log:\n" + self.log()
            ) from None
        finally:
            self._reader.join(timeout=5)


def run_client(
    command: Sequence[str], timeout: float = 30.0, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a client to completion (killed on timeout, reported with its output)."""
    try:
        return subprocess.run(
            list(command), capture_output=True, timeout=timeout, input=input, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{command[0]} did not finish in {timeout}s; stderr:\n"
            + (exc.stderr or b"").decode(errors="replace")[-4000:]
        ) from None


def ffmpeg_publish_command(
    url: str, seconds: float, *, fps: int = 25, gop: int = 25, audio: bool = True
) -> list[str]:
    """FFmpeg publishing ``seconds`` of generated H.264 (+AAC) in real time to ``url``."""
    command = [require_client("ffmpeg"), "-hide_banner", "-loglevel", "error", "-re"]
    command += ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={fps}"]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    command += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop)]
    command += ["-pix_fmt", "yuv420p"]
    if audio:
        command += ["-c:a", "aac", "-b:a", "64k"]
    command += ["-f", "flv", url]
    return command


def probe_command(url: str) -> list[str]:
    """ffprobe reading ``url`` to its end, counting decoded frames per stream."""
    return [
        require_client("ffprobe"),
        "-v", "error", "-count_frames",
        "-show_entries", "stream=codec_type,codec_name,nb_read_frames",
        "-of", "json", url,
    ]  # fmt: skip


def frames_by_codec(stdout: bytes) -> dict[str, int]:
    """``{"h264": 100, "aac": 172}`` from ffprobe's JSON."""
    import json

    streams = json.loads(stdout or b"{}").get("streams", [])
    return {s["codec_name"]: int(s.get("nb_read_frames", 0)) for s in streams}


def start(command: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> tuple[int, bytes, bytes]:
    """Wait for a started client; kill it and fail if it overruns."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"{proc.args!r} did not finish in {timeout}s; stderr:\n{err.decode(errors='replace')}"
        ) from None
    return proc.returncode, out, err


NOBODY = 65534
"""The uid and gid VLC runs as when the tests run as root (Debian's ``nobody``/``nogroup``)."""


def vlc_command(url: str, *, seconds: float | None = None) -> list[str]:
    """Headless VLC reading ``url`` and remuxing every track it gets, unchanged, into Matroska
    on its standard output; it quits at the end of the stream, or after ``seconds`` of wall
    time (``--run-time``).

    Matroska rather than MPEG-TS: VLC's TS muxer drops what it still holds (its 400 ms DTS
    delay, about 5 video frames at 25 fps) when the input ends, which would hide whether the
    server sent a stream's last frames."""
    command = [require_client("cvlc"), "-I", "dummy", "--aout", "adummy", "--no-video-title-show"]
    command += ["--play-and-exit", "--sout-all", "--sout", "#std{access=file,mux=mkv,dst=-}"]
    if seconds is not None:
        command += ["--run-time", str(seconds)]
    return [*command, url]


@contextlib.contextmanager
def vlc_playing(
    url: str, out: Path, *, seconds: float | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """VLC (:func:`vlc_command`) playing ``url`` into the file ``out``; killed on exit if it is
    still running.

    VLC refuses to run as root, and CI runs as root: then it runs as ``nobody`` (setpriv, no
    supplementary groups). Its output goes through its standard output into ``out``, opened
    here, so that it needs no access to the test's directories; its HOME (where it keeps its
    playlist) is a fresh directory of its own under the system's temporary directory, removed
    afterwards. Its environment is only PATH, HOME and a locale."""
    command = vlc_command(url, seconds=seconds)
    home = Path(tempfile.mkdtemp(prefix="fms-vlc-home-"))
    if os.geteuid() == 0:
        os.chown(home, NOBODY, NOBODY)
        user = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        command = [require_client("setpriv"), *user, *command]
    environment = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home)}
    environment["LC_ALL"] = "C.UTF-8"
    try:
        with out.open("wb") as sink:
            proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.PIPE, env=environment)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
