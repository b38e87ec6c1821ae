"""What a newcomer sees first: ``--help`` texts and the extras' entry points without their extra."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from comfyui_exporter.cli.main import main


def test_exporter_help_lists_the_subcommands_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = "  " + " ".join(capsys.readouterr().out.split()).replace(" --", "  --")
    assert "comfyui-exporter doctor [flags]" in out and "install-plugin COMFYUI_DIR" in out
    for flag, default in (
        ("--system-stats-interval", "15.0"),
        ("--request-timeout", "10.0"),
        ("--max-response-bytes", str(256 * 1024 * 1024)),
    ):
        assert re.search(rf"  {flag} [A-Z_]+ [^-]*\(default {default}\)", out), flag


def test_doctor_help_is_the_doctors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: comfyui-exporter doctor") and "Exit status" in out


def test_simulator_help_has_no_restructuredtext(capsys: pytest.CaptureFixture[str]) -> None:
    from comfyui_exporter.sim.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: comfyui-exporter-sim") and "``" not in out


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("comfyui_exporter.sim.__main__", "aiohttp", "sim"),
        ("comfyui_exporter.relay.__main__", "aiohttp", "relay"),
    ],
)
def test_entry_point_without_its_extra_names_it_in_one_line(module: str, missing: str, extra: str) -> None:
    code = f"import sys; sys.modules[{missing!r}] = None; from {module} import main; sys.exit(main([]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"'comfyui-exporter[{extra}]'" in lines[0] and "Traceback" not in result.stderr
