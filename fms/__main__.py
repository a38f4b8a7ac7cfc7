"""``python -m fms`` is the same as the ``fms`` console script."""

from __future__ import annotations

import sys

from fms.cli import main

if __name__ == "__main__":
    sys.exit(main())
