"""The player page and the static files of the HTTP listener (fms.http.pages), through the
API's routing: no sockets, the API answers at once."""

from __future__ import annotations

from pathlib import Path

import pytest

import fms.http
from fms.config import HTTPConfig
from fms.http.api import API, Response
from tests.support.server_peer import factory_for

HERE = Path(fms.http.__file__).parent


def answer(api: API, method: str, path: bytes) -> Response:
    got: list[Response] = []
    api.handle(method, path, {}, {}).addCallback(got.append)
    assert len(got) == 1
    return got[0]


@pytest.fixture
def api() -> API:
    return API(factory_for(), HTTPConfig(enabled=True, token="t", read_token=True))


def test_the_player_page_is_the_same_file_for_every_stream(api: API) -> None:
    page = (HERE / "player.html").read_bytes()
    for path in (b"/play/live/cam", b"/play/other/a%2Fb"):
        response = answer(api, "GET", path)
        assert (response.status, response.body) == (200, page)
        assert response.content_type.startswith("text/html")


def test_pages_need_no_token_even_when_reads_do(api: API) -> None:
    """A browser opens them by address, with no way to add a bearer header."""
    assert answer(api, "GET", b"/api/v1/streams").status == 401
    assert answer(api, "GET", b"/play/live/cam").status == 200
    assert answer(api, "GET", b"/static/mpegts.js").status == 200


def test_static_serves_the_vendored_script_as_javascript_with_a_cache_lifetime(api: API) -> None:
    response = answer(api, "GET", b"/static/mpegts.js")
    assert response.body == (HERE / "static" / "mpegts.js").read_bytes()
    assert response.content_type == "text/javascript; charset=utf-8"
    assert ("Cache-Control", "public, max-age=3600") in response.headers


@pytest.mark.parametrize(
    "path", [b"/static/README", b"/static/..%2Fapi.py", b"/static/", b"/play/live", b"/play/a/b/c"]
)
def test_only_listed_files_and_whole_stream_addresses_are_served(api: API, path: bytes) -> None:
    assert answer(api, "GET", path).status == 404


def test_pages_only_answer_get_and_head(api: API) -> None:
    assert answer(api, "HEAD", b"/play/live/cam").status == 200
    assert answer(api, "DELETE", b"/play/live/cam").status == 405
