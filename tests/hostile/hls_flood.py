"""A flood of Low-Latency HLS playlist requests, in a process of its own so that it does not
compete with the test's normal viewer for the GIL: ``python -m tests.hostile.hls_flood PORT
PATH CONNECTIONS SECONDS``. Each keep-alive connection sends ``PATH`` (its ``{n}`` replaced by
a counter, so that every request differs) pipelined in batches of 50 and reads the answers;
at the end one JSON line: ``{"requests": N, "statuses": {"200": n, ...}}``."""

from __future__ import annotations

import asyncio
import json
import sys
import time

BATCH = 50


async def _connection(port: int, path: str, until: float, counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while time.monotonic() < until:
            batch = []
            for _ in range(BATCH):
                n += 1
                batch.append(f"GET {path.format(n=n)} HTTP/1.1\r\nHost: x\r\n\r\n")
            writer.write("".join(batch).encode())
            for _ in range(BATCH):
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                status = status_line.split(b" ")[1].decode() if status_line else "closed"
                counts[status] = counts.get(status, 0) + 1
    finally:
        writer.close()


async def main(port: int, path: str, connections: int, seconds: float) -> None:
    counts: dict[str, int] = {}
    until = time.monotonic() + seconds
    await asyncio.gather(*(_connection(port, path, until, counts) for _ in range(connections)))
    print(json.dumps({"requests": sum(counts.values()), "statuses": counts}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
