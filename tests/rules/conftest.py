"""Rule, Alertmanager-config and docs checks: pytest drives promtool and amtool (tests/support/binaries.py).

Under CI=true a missing binary fails the test; elsewhere it skips with the install command.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `from tests.support...` also under a bare `pytest`
    sys.path.insert(0, str(REPO))
