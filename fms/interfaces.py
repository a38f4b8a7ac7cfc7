"""Deprecated: import from :mod:`fms.apps.api` (or :mod:`fms.apps.interfaces`).

Kept so that plugins written for earlier versions go on working; the interfaces are the same
objects. To be removed in a later major version.
"""

from __future__ import annotations

from fms.apps.interfaces import IApplication, IAppView, IClientView, IStreamView

__all__ = ["IAppView", "IApplication", "IClientView", "IStreamView"]
