"""The knob table in docs/alerting.md and the `# knob:` markers in prometheus/rules/comfyui.yml agree:
every threshold is documented in one place with its real default."""

from __future__ import annotations

import re

import pytest

from tests.support.binaries import PROMETHEUS_DIR, REPO, knob_sites, set_knobs

DOC = REPO / "docs" / "alerting.md"
RULES = PROMETHEUS_DIR / "rules" / "comfyui.yml"
ROW = re.compile(r"^\|\s*`([A-Za-z0-9_]+)`\s*\|\s*`([^`]+)`\s*\|")


def _table() -> dict[str, str]:
    text = DOC.read_text()
    section = text.split("\n## Knobs\n", 1)[1].split("\n## ", 1)[0]
    rows = [ROW.match(line) for line in section.splitlines()]
    table: dict[str, str] = {}
    for row in filter(None, rows):
        assert row.group(1) not in table, f"knob {row.group(1)} listed twice"
        table[row.group(1)] = row.group(2)
    return table


def test_knob_table_is_parsed() -> None:
    assert len(_table()) >= 20


def test_every_marker_is_documented_with_its_value() -> None:
    table = _table()
    for site in knob_sites(RULES):
        assert site.name in table, f"{RULES.name}:{site.line_no}: knob {site.name} missing in {DOC.name}"
        assert site.value == table[site.name], (
            f"{RULES.name}:{site.line_no}: knob {site.name} is {site.value}, "
            f"{DOC.name} says {table[site.name]}"
        )


def test_every_documented_knob_exists() -> None:
    assert set(_table()) == {site.name for site in knob_sites(RULES)}


def test_every_for_is_a_knob() -> None:
    """A `for:` without a marker would be a magic number outside the table."""
    for line_no, line in enumerate(RULES.read_text().splitlines(), 1):
        if line.strip().startswith("for:"):
            assert "# knob:" in line, f"{RULES.name}:{line_no}: `for` without a knob marker"


@pytest.mark.parametrize(
    ("line", "knobs", "expected"),
    [
        ("  for: 1m  # knob: a\n", {"a": "2s"}, "  for: 2s  # knob: a\n"),
        ("x:15m > 0.25  # knob: b\n", {"b": "0.5"}, "x:15m > 0.5  # knob: b\n"),
        ("  increase(x[15m  # knob: c\n", {"c": "30s"}, "  increase(x[30s  # knob: c\n"),
        ("  ], 7200  # knob: d\n", {"d": "60"}, "  ], 60  # knob: d\n"),
        ("  for: 1m  # knob: a\n", {"other": "1s"}, "  for: 1m  # knob: a\n"),
    ],
)
def test_set_knobs(line: str, knobs: dict[str, str], expected: str) -> None:
    assert set_knobs(line, knobs)[0] == expected
