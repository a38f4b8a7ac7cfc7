"""One module of events for both connections: the client's names are the same classes."""

from __future__ import annotations

import dataclasses

from fms.rtmp import client as cl
from fms.rtmp import events as ev


def test_every_event_the_client_module_exports_is_the_events_module_class() -> None:
    """``from fms.rtmp.client import StatusReceived`` and ``ev.StatusReceived`` are one class, so
    an ``isinstance`` check works whichever module a caller imported it from."""
    exported = [getattr(cl, name) for name in cl.__all__]
    events = [obj for obj in exported if isinstance(obj, type) and issubclass(obj, ev.Event)]
    assert len(events) > 10
    for cls in events:
        assert getattr(ev, cls.__name__) is cls, cls.__name__


def test_events_module_defines_each_name_once_as_a_frozen_slotted_record() -> None:
    classes = [
        obj
        for obj in vars(ev).values()
        if isinstance(obj, type) and issubclass(obj, ev.Event) and obj.__module__ == ev.__name__
    ]
    names = [cls.__name__ for cls in classes]
    assert len(names) == len(set(names))
    for cls in classes:
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        assert "__slots__" in vars(cls), cls.__name__


def test_answers_both_sides_receive_are_client_events_and_server_events() -> None:
    """Both connections report ResultReceived, ErrorReceived and PingAnswered: one class each,
    so a server's handler table and a client's ``isinstance(e, ClientEvent)`` both accept them."""
    for cls in (ev.ResultReceived, ev.ErrorReceived, ev.PingAnswered):
        assert issubclass(cls, ev.ClientEvent) and issubclass(cls, ev.Event)
    assert not issubclass(ev.PublishRequested, ev.ClientEvent)
