"""Write ``RESULTS.md``: headline ratios and unmet targets first, then every section's tables.

Why this order: a reader deciding between us and a full-history poller needs the ratios and the
list of what did *not* meet its target; the tables after them are the evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .common import SectionResult, Table


def _table(t: Table) -> list[str]:
    lines = [f"**{t.title}**", "", "| " + " | ".join(t.headers) + " |", "|" + "---|" * len(t.headers)]
    for row in t.rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    lines.append("")
    return lines


def render(
    results: Sequence[SectionResult],
    machine: dict[str, str],
    smoke: bool,
    total_seconds: float,
    argv: Sequence[str],
) -> str:
    cmd = " ".join(["python -m bench", *argv]).strip()
    lines = [
        "# comfyui-exporter benchmarks" + (" (SMOKE RUN: shortened, not for quoting)" if smoke else ""),
        "",
        f"Produced by `{cmd}` on {machine.get('date', '?')} in {total_seconds / 60:.1f} min. "
        "Everything ran on 127.0.0.1 against the bundled ComfyUI simulator (`comfyui_exporter.sim`). "
        "Figures are medians with the spread (min–max) over repeated runs; comparisons are ratios "
        "measured within the same run. Absolute times on a shared 2-core machine are noise; ratios "
        "much less so. Method and caveats: [docs/benchmarks.md](../docs/benchmarks.md).",
        "",
        "## Headlines",
        "",
    ]
    for r in results:
        lines += [f"- {h}" for h in r.headlines]
    failed = [r for r in results if r.error]
    for r in failed:
        lines.append(f"- **{r.title}: did not run** — {r.error}")
    lines += ["", "## Targets", ""]
    targets = [(r, t) for r in results for t in r.targets]
    unmet = [(r, t) for r, t in targets if not t.met]
    if unmet:
        lines.append("**Not met:**")
        lines.append("")
        for _r, t in unmet:
            lines.append(
                f"- {t.name}: target {t.target}, measured {t.measured}." + (f" {t.note}" if t.note else "")
            )
        lines.append("")
    else:
        lines += ["All targets below were met.", ""]
    lines += ["| target | required | measured | met |", "|---|---|---|---|"]
    for _r, t in targets:
        lines.append(f"| {t.name} | {t.target} | {t.measured} | {'yes' if t.met else '**no**'} |")
    lines += ["", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine.items()]
    lines.append("")
    for r in results:
        lines += [f"## {r.title}", "", f"_{r.seconds:.0f} s_", ""]
        if r.error:
            lines += [f"**Did not run:** {r.error}", ""]
            continue
        for t in r.tables:
            lines += _table(t)
        if r.notes:
            lines += [f"- {n}" for n in r.notes]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    path: Path,
    results: Sequence[SectionResult],
    machine: dict[str, str],
    smoke: bool,
    total_seconds: float,
    argv: Sequence[str],
) -> None:
    path.write_text(render(results, machine, smoke, total_seconds, argv))
