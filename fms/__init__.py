"""pyFMS: a live-streaming RTMP server.

This module stays import-light on purpose: ``import fms.rtmp`` and ``import fms.amf``
must not pull in Twisted, so nothing here imports anything beyond the standard library.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
