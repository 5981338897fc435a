"""What the bench scripts in ``bench/`` share: the stack they run against, the processes they start,
the SQL and Kafka housekeeping they do, CPU accounting and the report they append to RESULTS.md.

The scripts run as ``.venv/bin/python bench/<script>.py``, so ``bench/`` is on ``sys.path`` and this
package imports as ``harness``. Importing it also puts the repository root first on ``sys.path``, so
``dbmux`` comes from this checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
