"""The direction of imports: the sans-IO layers load no Twisted and no zope."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["fms.rtmp", "fms.amf", "fms.rtmp.connection", "fms.rtmp.client", "fms.live.stream"]
)
def test_sans_io_module_loads_no_twisted_or_zope(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'zope'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
