"""One row of the doctor's report, shared by the ComfyUI checks (``doctor``) and the host checks.

Kept apart so that ``doctor_host`` and ``doctor`` both build rows without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

OK, INFO, WARN, FAIL, SKIP = "OK", "INFO", "WARN", "FAIL", "SKIP"


@dataclass(frozen=True)
class Check:
    """One row of the report."""

    check: str
    target: str  # instance name, or "host"
    result: str  # OK | INFO | WARN | FAIL | SKIP
    detail: str
    fix: str = ""
