"""Enhanced RTMP v2 capability negotiation in the connect ``_result``, through the real server
protocol on an in-memory transport: a client that announces codecs or ``capsEx`` learns what
the server forwards (CanForward only: pyFMS decodes and encodes nothing) and its extended
capabilities (Reconnect, Multitrack and ModEx); any other client gets the old answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.rtmp.capabilities import (
    AUDIO_FOURCCS,
    VIDEO_FOURCCS,
    CapsExMask,
    FourCcInfoMask,
    announces_reconnect,
)
from fms.rtmp.connection import FMS_CAPABILITIES, FMS_VERSION
from tests.support.server_peer import Peer, factory_for

FORWARD = float(FourCcInfoMask.CAN_FORWARD)


def connect_result(**fields: Any) -> dict[str, Any]:
    """The properties object of the ``_result`` a client connecting with ``fields`` gets."""
    peer = Peer(factory_for()).connect(**fields)
    results = [c for c in peer.client.commands() if c.name == "_result" and c.transaction_id == 1]
    assert len(results) == 1, peer.client.commands()
    props = results[0].command_object
    assert isinstance(props, dict)
    assert results[0].arguments[0]["code"] == "NetConnection.Connect.Success"
    return props


def test_a_client_that_announces_nothing_gets_the_legacy_result() -> None:
    assert connect_result() == {
        "fmsVer": FMS_VERSION,
        "capabilities": float(FMS_CAPABILITIES),
        "mode": 1.0,
    }


def test_fourcc_maps_say_every_codec_is_forwarded_and_none_decoded_or_encoded() -> None:
    props = connect_result(
        videoFourCcInfoMap={"hvc1": 7.0, "av01": 1.0, "*": 4.0},
        audioFourCcInfoMap={"Opus": 3.0},
    )
    assert props["videoFourCcInfoMap"] == {"*": FORWARD, **{c: FORWARD for c in VIDEO_FOURCCS}}
    assert props["audioFourCcInfoMap"] == {"*": FORWARD, **{c: FORWARD for c in AUDIO_FOURCCS}}
    assert "fourCcList" not in props  # a v2 client that did not use it gets none


def test_caps_ex_says_reconnect_multitrack_and_modex_but_not_nano_offsets() -> None:
    props = connect_result(capsEx=float(CapsExMask.RECONNECT | CapsExMask.MULTITRACK))
    caps = CapsExMask(int(props["capsEx"]))
    assert caps == CapsExMask.RECONNECT | CapsExMask.MULTITRACK | CapsExMask.MOD_EX
    assert not caps & CapsExMask.TIMESTAMP_NANO_OFFSET  # the offset is passed on, not applied
    assert props["fmsVer"] == FMS_VERSION and props["capabilities"] == float(FMS_CAPABILITIES)


def test_a_fourcclist_client_is_answered_with_a_fourcclist_of_what_is_forwarded() -> None:
    """Enhanced RTMP v1 clients (FFmpeg 6.1+) send ``fourCcList`` only."""
    props = connect_result(fourCcList=["hvc1", "av01", "vp09"])
    assert props["fourCcList"] == [*VIDEO_FOURCCS, *AUDIO_FOURCCS, "*"]
    assert props["capsEx"] == float(SERVER_CAPS)
    assert set(props["videoFourCcInfoMap"].values()) == {FORWARD}


SERVER_CAPS = CapsExMask.RECONNECT | CapsExMask.MULTITRACK | CapsExMask.MOD_EX


@pytest.mark.parametrize(
    ("caps_ex", "announced"),
    [(1.0, True), (7.0, True), (15.0, True), (6.0, False), (0.0, False), (1.5, False),
     (-1.0, False), (257.0, False), (float("nan"), False), (True, False), ("1", False)],
)  # fmt: skip
def test_only_a_whole_caps_ex_with_bit_0x01_announces_reconnect(
    caps_ex: Any, announced: bool
) -> None:
    assert announces_reconnect({"capsEx": caps_ex}) is announced


def test_a_connect_without_caps_ex_announces_no_reconnect() -> None:
    assert not announces_reconnect({"app": "live", "fourCcList": ["hvc1"]})


ANNOUNCED = st.fixed_dictionaries(
    {},
    optional={
        "fourCcList": st.lists(st.sampled_from([*VIDEO_FOURCCS, *AUDIO_FOURCCS, "*"])),
        "videoFourCcInfoMap": st.dictionaries(
            st.sampled_from([*VIDEO_FOURCCS, "*"]), st.integers(0, 7).map(float)
        ),
        "audioFourCcInfoMap": st.dictionaries(
            st.sampled_from([*AUDIO_FOURCCS, "*"]), st.integers(0, 7).map(float)
        ),
        "capsEx": st.integers(0, 15).map(float),
    },
).filter(bool)


@given(ANNOUNCED)
def test_whatever_a_client_claims_the_server_states_only_what_it_can_forward(
    fields: dict[str, Any],
) -> None:
    props = connect_result(**fields)
    for name in ("videoFourCcInfoMap", "audioFourCcInfoMap"):
        assert props[name]["*"] == FORWARD
        assert set(props[name].values()) == {FORWARD}
    assert ("fourCcList" in props) == ("fourCcList" in fields)
    assert props["capsEx"] == float(SERVER_CAPS)
