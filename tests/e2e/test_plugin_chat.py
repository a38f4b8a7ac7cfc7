"""The chat plugin end to end: RPC in both directions with an AMF0 and an AMF3 client (our own
client from fms.rtmp) against a real server process."""

from __future__ import annotations

from pathlib import Path

import pytest

from fms.rtmp.client import CallReceived, Connected, ErrorReceived, ResultReceived
from tests.e2e.harness import ServerProcess
from tests.e2e.test_obs_sequence import SocketClient

pytestmark = pytest.mark.e2e


def joined(server: ServerProcess, encoding: int, nick: str) -> SocketClient:
    peer = SocketClient(server.port)
    peer.conn.connect("chat", f"{server.url}/chat", object_encoding=encoding)
    peer.until(lambda e: isinstance(e, Connected))
    tid = peer.conn.call("join", nick)
    # The server calls getClientInfo on every newcomer: answer it.
    ask = peer.until(lambda e: isinstance(e, CallReceived) and e.name == "getClientInfo")
    assert isinstance(ask, CallReceived)
    peer.conn.send_result(ask.command.transaction_id, {"nick": nick, "amf": encoding})
    peer.until(lambda e: isinstance(e, ResultReceived) and e.transaction_id == tid)
    return peer


def test_chat_rpc_both_ways_with_amf0_and_amf3_clients(tmp_path: Path) -> None:
    config = tmp_path / "fms.toml"
    config.write_text("[[apps.chat.plugins]]\nuse = 'chat'\n")
    server = ServerProcess(config=config)
    try:
        alice = joined(server, 0, "alice")
        bob = joined(server, 3, "bob")
        assert bob.conn.object_encoding == 3
        alice.until(lambda e: isinstance(e, CallReceived) and e.name == "onJoin")

        tid = bob.conn.call("say", "hello from AMF3")
        bob.until(lambda e: isinstance(e, ResultReceived) and e.transaction_id == tid)
        for peer in (alice, bob):
            message = peer.until(lambda e: isinstance(e, CallReceived) and e.name == "onMessage")
            assert isinstance(message, CallReceived)
            assert message.command.arguments == ("bob", "hello from AMF3")

        tid = alice.conn.call("who")
        answer = alice.until(lambda e: isinstance(e, ResultReceived) and e.transaction_id == tid)
        assert isinstance(answer, ResultReceived)
        members = next(v for v in answer.values if isinstance(v, dict))
        assert members == {"alice": {"nick": "alice", "amf": 0}, "bob": {"nick": "bob", "amf": 3}}

        tid = alice.conn.call("say", "")
        error = alice.until(lambda e: isinstance(e, ErrorReceived) and e.transaction_id == tid)
        assert isinstance(error, ErrorReceived)
        assert "1 to 500 characters" in error.info["description"]
        bob.sock.close()
        left = alice.until(lambda e: isinstance(e, CallReceived) and e.name == "onLeave")
        assert isinstance(left, CallReceived) and left.command.arguments == ("bob",)
    finally:
        assert server.stop() == 0
