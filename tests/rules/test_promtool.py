"""promtool: the Prometheus config and every rule file check, every unit-test file passes, and the
unit tests can fail (a broken rule is caught)."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from tests.support.binaries import PROMETHEUS_DIR, run_tool

RULE_FILES = sorted(PROMETHEUS_DIR.glob("rules/*.yml"))
TEST_FILES = sorted(PROMETHEUS_DIR.glob("tests/*.yml"))


def _output(result) -> str:
    return f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_rule_files_exist() -> None:
    assert PROMETHEUS_DIR / "rules" / "comfyui.yml" in RULE_FILES
    assert PROMETHEUS_DIR / "tests" / "comfyui_alerts_test.yml" in TEST_FILES


def test_promtool_check_rules() -> None:
    result = run_tool("promtool", "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, _output(result)
    assert result.stdout.count("SUCCESS") == len(RULE_FILES), _output(result)


def test_promtool_check_config() -> None:
    result = run_tool("promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, _output(result)
    # the glob must pick up every rule file (ours and the GPU ones)
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout, _output(result)


def test_prometheus_config_shape() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"comfyui-exporter", "comfyui-alert-relay"} <= jobs
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]


def test_promtool_unit_tests_pass() -> None:
    """Every unit-test file, the GPU ones included (one promtool per file, in parallel: ~0.15 s per
    test group is promtool's own overhead)."""
    names = [str(p.relative_to(PROMETHEUS_DIR)) for p in TEST_FILES]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(
            pool.map(lambda n: run_tool("promtool", "test", "rules", n, cwd=PROMETHEUS_DIR), names)
        )
    failed = {n: _output(r) for n, r in zip(names, results, strict=True) if r.returncode != 0}
    assert not failed, "\n\n".join(f"{n}:\n{o}" for n, o in failed.items())
    assert all("SUCCESS" in r.stdout for r in results)


def _mutated_run(tmp_path: Path, old: str, new: str, groups: str) -> str:
    """Apply one edit to a copy of comfyui.yml and run the unit-test groups whose name contains
    ``groups``; promtool must fail. Returns its output."""
    shutil.copytree(PROMETHEUS_DIR / "rules", tmp_path / "rules")
    (tmp_path / "tests").mkdir()
    rules = tmp_path / "rules" / "comfyui.yml"
    text = rules.read_text()
    assert text.count(old) == 1, f"mutation anchor {old!r} not unique"
    rules.write_text(text.replace(old, new))
    selected = 0
    for path in TEST_FILES:
        if not path.name.startswith("comfyui_"):
            continue
        spec = yaml.safe_load(path.read_text())
        spec["tests"] = [t for t in spec["tests"] if groups in t["name"]]
        selected += len(spec["tests"])
        if spec["tests"]:
            (tmp_path / "tests" / path.name).write_text(yaml.safe_dump(spec, sort_keys=False))
    assert selected, f"no unit-test group named like {groups!r}"
    names = [f"tests/{p.name}" for p in sorted((tmp_path / "tests").iterdir())]
    result = run_tool("promtool", "test", "rules", *names, cwd=tmp_path)
    assert result.returncode == 1, f"a broken rule went unnoticed: {old!r} -> {new!r}\n" + _output(result)
    return result.stdout + result.stderr


def test_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    output = _mutated_run(
        tmp_path,
        "comfyui_running_prompt_age_seconds > 1800",
        "comfyui_running_prompt_age_seconds > 1900",
        groups="long prompt",
    )
    assert "ComfyUIPromptStuck" in output


def test_unit_tests_catch_a_missing_progress_guard(tmp_path: Path) -> None:
    """Dropping the progress condition would page for a long sampler that is still progressing."""
    output = _mutated_run(
        tmp_path,
        "comfyui_running_prompt_progress_age_seconds <= 600",
        "comfyui_running_prompt_progress_age_seconds <= -1",
        groups="long prompt",
    )
    assert "keeps reporting progress" in output


def test_unit_tests_catch_a_changed_label(tmp_path: Path) -> None:
    output = _mutated_run(tmp_path, "severity: info", "severity: warning", groups="restart")
    assert "ComfyUIRestarted" in output
