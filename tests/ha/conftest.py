"""HA pipeline tests (marker e2e): two Prometheus replicas, a three-node Alertmanager cluster, the
relay and fake robots, on 127.0.0.1 with the real binaries. See tests/ha/ha_stack.py."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `from tests.support...` also under a bare `pytest`
    sys.path.insert(0, str(REPO))
