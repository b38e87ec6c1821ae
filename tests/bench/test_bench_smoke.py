"""The benchmark harness keeps working: ``python -m bench --smoke`` runs every section.

No thresholds here (numbers on a shared CI machine are noise); the full run writes bench/RESULTS.md.
This only checks that every section ran and produced numbers, within about a minute.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("cost", "latency", "completeness", "render", "ingest", "memory", "relay", "fleet")


def test_bench_smoke_produces_every_section(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"rc {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    data = json.loads(out.with_suffix(".json").read_text())
    sections = {s["key"]: s for s in data["sections"]}
    assert tuple(sections) == SECTIONS, list(sections)
    for key, section in sections.items():
        assert section["error"] is None, f"{key}: {section['error']}"
        finite = [v for v in section["numbers"].values() if isinstance(v, int | float) and math.isfinite(v)]
        assert finite, f"section {key} produced no numbers"
        assert section["tables"] and all(t["rows"] for t in section["tables"]), f"{key}: empty table"
    report = out.read_text()
    for number in range(1, len(SECTIONS) + 1):
        assert f"\n## {number}. " in report, f"section {number} missing from the report"
    assert "## Headlines" in report and "## Targets" in report
    print(f"\nbench --smoke took {elapsed:.0f} s")
    assert elapsed < 120, f"the smoke run took {elapsed:.0f} s (budget ~60 s)"
