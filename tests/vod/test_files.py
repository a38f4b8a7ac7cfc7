"""fms.vod.files: recording names stay one component of the recording folder whatever the
client sends, templates are checked once, and the budget picks the oldest files."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.vod.files import (
    DEFAULT_TEMPLATE,
    MAX_FILE_NAME,
    StoredFile,
    check_template,
    oldest_over_budget,
    path_component,
    render,
    safe_file_name,
    template_pattern,
)

NOON = 1_767_268_800.0  # 2026-01-01T12:00:00Z
TEMPLATE = "{stream}-{start:%Y%m%d-%H%M%S}.flv"


def test_the_template_names_the_stream_and_its_start_time() -> None:
    assert render(TEMPLATE, app="live", stream="cam", start=NOON) == "cam-20260101-120000.flv"
    assert render(DEFAULT_TEMPLATE, app="live", stream="cam", start=NOON, attempt=2) == (
        "cam-20260101T120000Z-2.flv"
    )


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "a\0b",
        "\0",
        "x" * 5000,
        "é" * 3000,
        "C:\\Windows\\x",
        ".hidden",
        "a/../../b",
        "\n\r\t",
    ],
)
def test_hostile_stream_names_give_one_safe_component(name: str) -> None:
    rendered = render(TEMPLATE, app="live", stream=name, start=NOON, attempt=999)
    assert safe_file_name(rendered)
    assert "/" not in rendered and "\0" not in rendered and not rendered.startswith(".")
    assert len(rendered.encode()) <= MAX_FILE_NAME


@given(st.text())
def test_any_stream_name_renders_to_a_safe_name(name: str) -> None:
    assert safe_file_name(render(TEMPLATE, app=name, stream=name, start=NOON, attempt=7))


def test_distinct_names_stay_distinct() -> None:
    names = ["a/b", "a%2Fb", "a_b", ".a", "%2Ea"]
    assert len({path_component(n) for n in names}) == len(names)


@pytest.mark.parametrize(
    "template",
    [
        "../{stream}.flv",
        "{stream}/x.flv",
        "/tmp/{stream}.flv",
        "{stream}.mp4",
        "{nope}.flv",
        "x.flv",
        "{stream",
        ".{stream}.flv",
        "{stream}\0.flv",
        "{app}.flv",
    ],
)
def test_templates_that_could_leave_the_folder_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        check_template(template)


def test_good_templates_pass() -> None:
    for template in (TEMPLATE, DEFAULT_TEMPLATE, "{app}_{stream}_{start:%s}.flv"):
        check_template(template)


def test_the_pattern_finds_a_streams_recordings_and_only_them() -> None:
    pattern = template_pattern(TEMPLATE, app="live", stream="cam")
    assert pattern.fullmatch("cam-20260101-120000.flv")
    assert pattern.fullmatch("cam-20260101-120000-3.flv")
    assert not pattern.fullmatch("cam2-20260101-120000.flv")
    assert not pattern.fullmatch("cam-20260101-120000.flv.part")


def test_the_budget_deletes_the_oldest_until_the_rest_fits_and_spares_open_files() -> None:
    files = [StoredFile("c", 300, 3), StoredFile("a", 100, 1), StoredFile("b", 200, 2),
             StoredFile("open", 500, 0)]  # fmt: skip
    chosen = oldest_over_budget(files, 800, keep=frozenset({"open"}))
    assert [f.name for f in chosen] == ["a", "b"]
    assert sum(f.size for f in files) - sum(f.size for f in chosen) <= 800
    assert oldest_over_budget(files, 1100) == []
