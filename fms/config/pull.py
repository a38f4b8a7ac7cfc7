"""Pull sources in the configuration (``[[apps.NAME.pull]]``): where a stream that nobody
publishes here is fetched from, checked when the configuration loads and filled in when a
player (or the server's start, for ``always``) asks for it."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fms.config.fields import option, retry_problems, tables
from fms.config.push import push_url_problem

PULL_MODES = ("on-demand", "always")
PULL_FIELDS = ("name", "app")
"""The fields a pull's ``name`` template may use: the local stream's name and application."""
HTTP_SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class PullConfig:
    """One ``[[apps.NAME.pull]]`` table: streams of the app whose name ``match`` takes (a shell
    glob, ``fnmatch``, case-sensitive) and that nobody publishes here are played from ``url``
    and published here as a local publisher's would be.

    ``url``: ``rtmp[s]://host[:port]/app`` (the upstream stream name is ``name``, a template
    over :data:`PULL_FIELDS`), or ``http[s]://host/path.flv`` (an HTTP-FLV source, whose path
    may use the same fields: ``http://a/live/{name}.flv``). ``mode``: ``on-demand`` (started
    by the first player, stopped ``idle_timeout`` seconds after the last one left) or
    ``always`` (from the server's start, for as long as it runs; ``match`` must then be a
    plain name, as there is no player to name the stream). Reconnects wait ``retry_initial``
    seconds, doubled after each failure up to ``retry_max``. ``start_timeout``: seconds a
    connection may take to deliver its first message before it counts as failed (an upstream
    stream that does not exist, or not yet). ``tls_trust``: as for a push (a PEM file trusted
    instead of the system's authorities for ``rtmps``/``https``)."""

    url: str = option("", doc="rtmp[s]://host[:port]/app or http[s]://host/path.flv")
    name: str = option("{name}", doc="upstream stream name: a template over {name} and {app}")
    match: str = option("*", doc="shell glob on the local stream name")
    mode: str = option("on-demand", choices=PULL_MODES, doc="on-demand or always")
    idle_timeout: float = option(
        10.0, minimum=0.0, doc="seconds an on-demand pull outlives its last player"
    )
    retry_initial: float = option(1.0, minimum=0.01, doc="first reconnect delay (seconds)")
    retry_max: float = option(30.0, minimum=0.01, doc="largest reconnect delay (seconds)")
    start_timeout: float = option(
        10.0, minimum=0.1, doc="seconds until the first message before a try counts as failed"
    )
    tls_trust: str = option("", doc="PEM file trusted for an rtmps/https source")


def render_pull(template: str, **fields: str) -> str:
    """``template`` with ``{name}``/``{app}`` replaced (``{{``/``}}`` are braces); checked
    first by :func:`pull_template_problem`, so no attribute or index lookup runs."""
    out = []
    for text, field_name, _spec, _conv in string.Formatter().parse(template):
        out.append(text)
        if field_name is not None:
            out.append(fields.get(field_name, ""))
    return "".join(out)


def pull_template_problem(template: str) -> str | None:
    """Why ``template`` is not a valid pull template, or None."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"malformed template: {exc}"
    for _text, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in PULL_FIELDS or spec or conversion:
            return f"unknown field {{{field_name}}} (known: {', '.join(PULL_FIELDS)})"
    return None


def is_http_source(url: str) -> bool:
    return url.split(":", 1)[0].lower() in HTTP_SCHEMES


def pull_url_problem(url: str) -> str | None:
    """Why ``url`` is not a pull source (``rtmp[s]://host[:port]/app`` or
    ``http[s]://host[:port]/path``), or None."""
    if not is_http_source(url):
        why = push_url_problem(url)
        return None if why is None else why.replace("rtmps", "rtmps, http, https")
    if (why := pull_template_problem(url)) is not None:
        return why
    try:
        parts = urlsplit(render_pull(url, name="x", app="x"))
        port = parts.port
    except ValueError as exc:
        return f"malformed URL: {exc}"
    if not parts.hostname or port == 0:
        return "no host, or port 0"
    return None


def load_pulls(
    value: object,
    where: str,
    problems: list[str],
    validated: Callable[[type[Any], object, str, list[str]], dict[str, Any]],
) -> list[PullConfig]:
    """``[[apps.NAME.pull]]`` tables; one problem per bad key (``validated`` reads a table's
    keys against :class:`PullConfig`'s fields, as for every other section)."""
    pulls = []
    for here, entry in tables(value, where, problems, "pull"):
        before = len(problems)
        options = dict(validated(PullConfig, entry, here, problems))
        url = options.get("url")
        if not url:
            problems.append(f"{here}.url: missing: the source, rtmp://host[:port]/app")
        elif (why := pull_url_problem(url)) is not None:
            problems.append(f"{here}.url: {why}")
        if (why := pull_template_problem(options.get("name", "{name}"))) is not None:
            problems.append(f"{here}.name: {why}")
        elif not render_pull(options.get("name", "{name}"), name="x", app="x"):
            problems.append(f"{here}.name: the template makes an empty name")
        retry_problems(here, options, problems)
        if options.get("mode") == "always" and any(c in options.get("match", "*") for c in "*?["):
            problems.append(
                f"{here}.match: an 'always' pull needs a plain stream name (no glob): "
                "nothing else names the stream to pull"
            )
        if len(problems) == before:
            pulls.append(PullConfig(**options))
    return pulls
