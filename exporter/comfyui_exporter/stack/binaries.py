"""Find Prometheus and Alertmanager: a flag, then ``*_BIN`` variables, then PATH (Debian names first).

Debian's Alertmanager binary is ``prometheus-alertmanager`` (there is no ``alertmanager``); upstream
tarballs and Homebrew call it ``alertmanager``. A missing binary is a start-up error that prints the
one command that installs both.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

CANDIDATES: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
}
INSTALL_COMMAND = "sudo apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"


class MissingBinary(RuntimeError):
    """A binary the stack needs is not installed (the message holds the install command)."""


def find(name: str, flag_value: str | None, env: Mapping[str, str] | None = None) -> str:
    """The path of ``prometheus`` / ``alertmanager``; raises :class:`MissingBinary`."""
    env = os.environ if env is None else env
    given = flag_value or env.get(f"{name.upper()}_BIN")
    if given:
        path = shutil.which(given) or (given if Path(given).is_file() else None)
        if path and os.access(path, os.X_OK):
            return str(Path(path).resolve())
        raise MissingBinary(f"{name}: {given} is not an executable file")
    for candidate in CANDIDATES[name]:
        path = shutil.which(candidate, path=env.get("PATH"))
        if path:
            return path
    raise MissingBinary(
        f"{' or '.join(CANDIDATES[name])} not found on PATH. Install it with:\n  {INSTALL_COMMAND}\n"
        f"or name the binary with --{name}-bin PATH."
    )
