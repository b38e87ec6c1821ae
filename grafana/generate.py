#!/usr/bin/env python3
"""Generate the Grafana dashboards in grafana/dashboards/ from one readable Python description.

    python grafana/generate.py          # rewrite grafana/dashboards/*.json
    python grafana/generate.py --check  # exit 1 if a committed JSON file differs from what this writes

The JSON files are the product (Grafana provisions them, people import them); this script only keeps
ids, grid positions, units and the variable plumbing consistent. The description lives in
grafana/dashgen/ (its __init__ says which module holds what). Edit there, regenerate, commit both.
tests/deploy/test_grafana_dashboards.py fails when the two drift apart.

Standard library only, so it runs anywhere the repo is checked out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"

# Run as a script, Python puts grafana/ on sys.path by itself; loaded by file path (as tests/deploy
# does) it does not, and dashgen is not an installed package.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from dashgen.overview import overview  # noqa: E402
from dashgen.settings import THRESHOLDS  # noqa: E402

__all__ = ["DASHBOARDS", "OUT_DIR", "THRESHOLDS", "main", "render"]

# File name (<uid>.json) -> the function that builds that dashboard. A new dashboard is one entry here.
DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {"comfyui-overview.json": overview}


def render(builder: Callable[[], dict[str, Any]]) -> str:
    """The exact bytes committed for one dashboard: keys in builder order, 2-space indent, final newline."""
    return json.dumps(builder(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every dashboard, or with --check only compare; the exit status is what CI acts on."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if the committed JSON differs")
    args = ap.parse_args(argv)
    stale = []
    for name, builder in DASHBOARDS.items():
        path = OUT_DIR / name
        text_ = render(builder)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text_:
                stale.append(name)
        else:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text_, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
