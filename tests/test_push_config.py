"""``[[apps.NAME.push]]``: what a push table may say, the name template, the match glob, and
which pushes an application starts for a publish (with a stand-in pusher: no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from fms.apps.pushes import AppPushes, PushError, PushRequest
from fms.config import PushConfig, parse_config, render_push_name
from fms.errors import ConfigError
from fms.live.stream import LiveStream


def _pushes(text: str) -> tuple[PushConfig, ...]:
    return parse_config(text).apps["live"].push


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def test_a_push_table_takes_its_defaults() -> None:
    (push,) = _pushes('[[apps.live.push]]\nurl = "rtmp://backup.example:1936/live"\n')
    assert push == PushConfig("rtmp://backup.example:1936/live", "{name}", "*", 1.0, 30.0, "")


def test_every_push_table_of_an_app_is_kept_in_order() -> None:
    pushes = _pushes(
        '[[apps.live.push]]\nurl = "rtmp://a.example/live"\n'
        '[[apps.live.push]]\nurl = "rtmps://b.example/app2"\nname = "{app}-{name}"\n'
        'match = "cam*"\nretry_initial = 0.5\nretry_max = 4\n'
    )
    assert [(p.url, p.name, p.match, p.retry_initial, p.retry_max) for p in pushes] == [
        ("rtmp://a.example/live", "{name}", "*", 1.0, 30.0),
        ("rtmps://b.example/app2", "{app}-{name}", "cam*", 0.5, 4.0),
    ]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://a.example/live", "scheme 'http'"),
        ("rtmp:///live", "no host"),
        ("rtmp://a.example", "no application"),
        ("rtmp://a.example/", "no application"),
        ("rtmp://a.example:notaport/live", "malformed URL"),
    ],
)
def test_a_push_url_that_names_no_rtmp_target_is_refused(url: str, why: str) -> None:
    problems = _problems(f'[[apps.live.push]]\nurl = "{url}"\n')
    assert len(problems) == 1 and "apps.live.push[0].url" in problems[0] and why in problems[0]


def test_a_push_without_url_is_refused() -> None:
    (problem,) = _problems('[[apps.live.push]]\nname = "x"\n')
    assert "apps.live.push[0].url: missing" in problem


@pytest.mark.parametrize("template", ["{stream}", "{name.__class__}", "{name!r}", "{name", "{}"])
def test_a_name_template_with_an_unknown_or_computed_field_is_refused(template: str) -> None:
    (problem,) = _problems(f'[[apps.live.push]]\nurl = "rtmp://a/live"\nname = "{template}"\n')
    assert "apps.live.push[0].name" in problem


def test_a_retry_maximum_below_the_first_delay_is_refused() -> None:
    (problem,) = _problems(
        '[[apps.live.push]]\nurl = "rtmp://a/live"\nretry_initial = 5\nretry_max = 2\n'
    )
    assert "retry_max: below retry_initial" in problem


def test_an_unknown_push_key_is_refused_with_the_known_ones() -> None:
    (problem,) = _problems('[[apps.live.push]]\nurl = "rtmp://a/live"\nstream = "x"\n')
    assert "push[0].stream: unknown key" in problem and "retry_max" in problem


def test_the_name_template_fills_name_app_and_query() -> None:
    assert render_push_name("{app}_{name}?{query}", name="cam", app="live", query="k=v&a=1") == (
        "live_cam?k=v&a=1"
    )


def test_a_query_mark_with_nothing_after_it_is_dropped() -> None:
    assert render_push_name("{name}?{query}", name="cam", app="live", query="") == "cam"


def test_doubled_braces_are_literal_braces() -> None:
    assert render_push_name("{{{name}}}", name="cam", app="live", query="") == "{cam}"


class _Handle:
    def __init__(self, request: PushRequest) -> None:
        self.request = request
        self.stopped = False

    @property
    def state(self) -> str:
        return "stopped" if self.stopped else "live"

    def stop(self) -> None:
        self.stopped = True

    def figures(self) -> dict[str, Any]:
        return {}


class _Pusher:
    def __init__(self) -> None:
        self.started: list[_Handle] = []

    def start(self, stream: LiveStream, request: PushRequest) -> _Handle:
        handle = _Handle(request)
        self.started.append(handle)
        return handle


def _published(name: str, query: dict[str, str] | None = None) -> LiveStream:
    stream = LiveStream("live", name)
    stream.start_publish(object(), now=0.0)
    stream.publish_query = dict(query or {})
    return stream


def test_a_publish_is_pushed_to_each_target_whose_glob_matches_its_name() -> None:
    pusher = _Pusher()
    pushes = AppPushes(
        _pushes(
            '[[apps.live.push]]\nurl = "rtmp://all/live"\n'
            '[[apps.live.push]]\nurl = "rtmp://cams/live"\nmatch = "cam[0-9]"\n'
            'name = "{app}-{name}?{query}"\n'
        ),
        pusher,
    )
    pushes.published(_published("cam1", {"key": "s3cret"}))
    pushes.published(_published("talk"))
    assert [(h.request.url, h.request.name, h.request.origin) for h in pusher.started] == [
        ("rtmp://all/live", "cam1", "config"),
        ("rtmp://cams/live", "live-cam1?key=s3cret", "config"),
        ("rtmp://all/live", "talk", "config"),
    ]


def test_the_end_of_a_publish_stops_its_pushes_and_no_other() -> None:
    pusher = _Pusher()
    pushes = AppPushes(_pushes('[[apps.live.push]]\nurl = "rtmp://all/live"\n'), pusher)
    first, second = _published("a"), _published("b")
    pushes.published(first)
    pushes.published(second)
    pushes.ended(first)
    assert [h.stopped for h in pusher.started] == [True, False]


def test_a_plugin_push_of_a_stream_nobody_publishes_is_refused() -> None:
    pushes = AppPushes((), _Pusher())
    with pytest.raises(PushError, match="not published"):
        pushes.push(LiveStream("live", "idle"), PushRequest("rtmp://t/live", "idle"))


def test_a_plugin_push_to_a_bad_url_is_refused() -> None:
    pushes = AppPushes((), _Pusher())
    with pytest.raises(PushError, match="scheme"):
        pushes.push(_published("cam"), PushRequest("udp://t/live", "cam"))


def test_a_plugin_push_ends_with_the_publish() -> None:
    pusher = _Pusher()
    pushes = AppPushes((), pusher)
    stream = _published("cam")
    handle = pushes.push(stream, PushRequest("rtmp://t/live", "cam"))
    pushes.ended(stream)
    assert handle.state == "stopped"
