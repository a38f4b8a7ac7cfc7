"""The log's JSON form (``[server] log_format = "json"``): one JSON object per line, for log
shippers (Vector, Fluent Bit, Loki's promtail, journald's JSON mode) that would otherwise
parse the text lines with a regular expression.

A line holds ``time`` (ISO 8601, UTC, milliseconds), ``level`` (``debug`` .. ``critical``, as
in the text form), ``system`` (the logger's name: ``fms.server.protocol``, a plugin's
``fms_user_plugins.NAME``), ``message`` (the text line's message, tracebacks left out), and
where they apply ``worker`` (``w1`` with ``fms run --workers``), ``peer`` (``host:port``),
``client`` (the connection's number, unique within its process), ``app``, ``stream`` and
``exception`` (the traceback). The fields come from the log event's keys of those names, which
the server's lines pass as they name them in their text (stdlib ``logging`` callers pass them
with ``extra=``); a line that names none has none. Everything is ASCII: non-ASCII characters
and newlines inside values are escaped, so a line is always one line.

No Twisted imports: :mod:`fms.log` (the observer) uses this module, not the other way round.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

CONTEXT_FIELDS = ("peer", "client", "app", "stream")
"""Event keys copied into the JSON object when present: strings, and ``client`` an int."""


class PeerLabel(str):
    """A connection's peer as log lines name it (``host:port``), carrying the connection's
    number (``client``) for the JSON form: every line that names the peer gets the client's
    number too, and the text form, which formats the string, stays exactly as it was."""

    client: int

    def __new__(cls, text: str, client: int) -> PeerLabel:
        label = super().__new__(cls, text)
        label.client = client
        return label


class JSONRenderer:
    """Turns a log event, its formatted message and its traceback into one JSON line (with its
    ``\\n``). ``worker`` names the process's worker (``w1``), empty outside ``--workers``."""

    def __init__(self, worker: str = "") -> None:
        self._worker = worker
        self._second = -1
        self._stamp = ""

    def __call__(
        self, event: Mapping[str, Any], level: str, system: str, message: str, trace: str | None
    ) -> str:
        millis = round(float(event.get("log_time", 0.0)) * 1000)
        second, milli = divmod(millis, 1000)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        record: dict[str, object] = {
            "time": f"{self._stamp}.{milli:03d}Z",
            "level": level,
            "system": system,
            "message": message,
        }
        if self._worker:
            record["worker"] = self._worker
        for key in CONTEXT_FIELDS:
            value = event.get(key)
            if key == "client" and type(value) is int:
                record[key] = value
            elif key != "client" and isinstance(value, str):
                record[key] = str(value)  # a plain str, whatever its subclass
        if "client" not in record:
            client = getattr(event.get("peer"), "client", None)
            if type(client) is int:
                record["client"] = client
        if trace:
            record["exception"] = trace
        return json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"
