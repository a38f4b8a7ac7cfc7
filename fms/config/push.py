"""Push targets in the configuration (``[[apps.NAME.push]]``): the table, its URL and its
name template, checked when the configuration loads (:func:`fms.config.parse_config`) and
filled in when a publish starts a push."""

from __future__ import annotations

import string
from dataclasses import dataclass
from urllib.parse import urlsplit

PUSH_SCHEMES = ("rtmp", "rtmps")
PUSH_FIELDS = ("name", "app", "query")
"""The fields a push's ``name`` template may use: the stream's name, its application and the
publish's query string (``k=v&...``, without the ``?``)."""


@dataclass(frozen=True, slots=True)
class PushConfig:
    """One ``[[apps.NAME.push]]`` table: relay every matching publish of the app to ``url``.

    ``url`` is ``rtmp://host[:port]/app`` or ``rtmps://...`` (the target's application is the
    path); ``name`` the target stream name, a template over :data:`PUSH_FIELDS`; ``match`` a
    shell glob (``fnmatch``, case-sensitive) on the published stream's name; the reconnect
    backoff starts at ``retry_initial`` seconds and doubles up to ``retry_max``.
    ``tls_trust``: a PEM file with the certificate trusted for an ``rtmps://`` target instead
    of the system's authorities (a self-signed target), relative to the configuration file."""

    url: str
    name: str = "{name}"
    match: str = "*"
    retry_initial: float = 1.0
    retry_max: float = 30.0
    tls_trust: str = ""


def render_push_name(template: str, **fields: str) -> str:
    """``template`` with ``{field}`` replaced (``{{``/``}}`` are braces); fields were checked
    by :func:`push_template_problem`, so no attribute or index lookup ever runs."""
    out = []
    for text, field_name, _spec, _conv in string.Formatter().parse(template):
        out.append(text)
        if field_name is not None:
            out.append(fields.get(field_name, ""))
    rendered = "".join(out)
    return rendered[:-1] if rendered.endswith("?") else rendered


def push_template_problem(template: str) -> str | None:
    """Why ``template`` is not a valid push name template, or None."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"malformed template: {exc}"
    for _text, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in PUSH_FIELDS or spec or conversion:
            return f"unknown field {{{field_name}}} (known: {', '.join(PUSH_FIELDS)})"
    if not render_push_name(template, name="x", app="x", query=""):
        return "the template makes an empty name"
    return None


def push_url_problem(url: str) -> str | None:
    """Why ``url`` is not a push target URL (``rtmp[s]://host[:port]/app``), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"malformed URL: {exc}"
    if parts.scheme not in PUSH_SCHEMES:
        return f"scheme {parts.scheme!r} is not one of {', '.join(PUSH_SCHEMES)}"
    if not parts.hostname or port == 0:
        return "no host, or port 0"
    if not parts.path.strip("/"):
        return "no application in the path (rtmp://host/APP)"
    return None
