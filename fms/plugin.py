"""Deprecated: import from :mod:`fms.apps.api`, the plugin author's API.

Kept so that plugins written for earlier versions (``from fms.plugin import Plugin, Reject``)
go on working; it re-exports the same objects, so ``isinstance`` checks agree. To be removed in
a later major version.
"""

from __future__ import annotations

from fms.apps.api import (
    ACCEPT,
    Accept,
    CallError,
    Decision,
    NotHandled,
    Plugin,
    Redirect,
    Reject,
    Rename,
)

__all__ = [
    "ACCEPT",
    "Accept",
    "CallError",
    "Decision",
    "NotHandled",
    "Plugin",
    "Redirect",
    "Reject",
    "Rename",
]
