"""Every recorded HTTP exchange (0.8.0 and 0.3.64), replayed against the simulator started as
that version and compared field by field."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from comfyui_exporter.sim.nodes import FAULT_MODES

from .compare import diff, remap_ids
from .conftest import REPLAY_FIXTURE
from .replay import RECORDED_VERSIONS, load_case, order, transcripts

SKIP_BODY = {
    # The recorded log ring buffer holds ComfyUI's start-up lines; only the layout is comparable.
    "/internal/logs/raw",
}


def _entries() -> list[Any]:
    params = []
    for version in RECORDED_VERSIONS:
        if not transcripts(version).is_dir():
            continue
        for name in order(version):
            case = load_case(name, version)
            if name == "history_scaling_timings":
                params.append(pytest.param(version, name, 0, id=f"{version}-{name}-0-POST-/history"))
                continue
            for i, entry in enumerate(case["http"]):
                label = f"{version}-{name}-{i}-{entry['method']}-{entry['path'][:40]}"
                params.append(pytest.param(version, name, i, id=label))
    return params


def _norm_ctype(value: str | None) -> str | None:
    # aiohttp sends no Content-Type for an empty 200 (recorded as None); application/octet-stream is
    # what an empty aiohttp Response reports on the client side.
    return None if value in (None, "application/octet-stream") else value


@pytest.mark.parametrize(("version", "case_name", "index"), _entries())
def test_replay_http_matches_recording(
    request: pytest.FixtureRequest, version: str, case_name: str, index: int
) -> None:
    replayed: dict[str, Any] = request.getfixturevalue(REPLAY_FIXTURE[version])
    recorded = load_case(case_name, version)["http"][index]
    got = replayed["results"][case_name].http[index]
    assert got.status == recorded["status"], (recorded["path"], got.body)
    assert _norm_ctype(got.content_type) == _norm_ctype(recorded["content_type"])
    if recorded.get("response_omitted"):
        assert got.raw_len > 0
        return
    body = remap_ids(got.body, replayed["id_map"])
    if recorded["path"] in SKIP_BODY:
        assert list(body) == list(recorded["response"])
        assert diff(recorded["response"]["entries"][0], body["entries"][0]) == []
        return
    if recorded["content_type"] and recorded["content_type"].startswith("text/plain"):
        assert body == recorded["response"]
        return
    if isinstance(recorded["response"], dict) and recorded["response"].get("_truncated_by_recorder"):
        # The recorder kept only the newest entries of a big /history: all keys, those entries.
        rec = recorded["response"]
        assert len(body) == rec["_total_keys"]
        assert list(body)[-len(rec["kept"]) :] == list(rec["kept"]) == rec["_kept_keys_newest_last"]
        assert list(body)[: len(rec["_omitted_keys"])] == rec["_omitted_keys"]
        problems = diff(rec["kept"], {k: body[k] for k in rec["kept"]})
        assert problems == [], "\n".join(problems[:30])
        return
    expected = _with_sim_fault_modes(recorded["response"])
    if "sort_by=execution_duration" in recorded["path"] and recorded["status"] == 200:
        # Which jobs come first depends on run times, which the replay scales down: check the
        # pagination, the order, and that every job is shaped like the recorded job with its id.
        assert body["pagination"] == expected["pagination"]
        durations = [j["execution_end_time"] - j["execution_start_time"] for j in body["jobs"]]
        assert durations == sorted(durations, reverse=True)
        full = load_case(case_name, version)["http"][6]["response"]["jobs"]  # GET /api/jobs (all jobs)
        by_id = {j["id"]: j for j in full}
        for job in body["jobs"]:
            assert diff(by_id[job["id"]], job, values=False) == []
        return
    problems = diff(expected, body)
    assert problems == [], "\n".join(problems[:30])
    # Same serialisation (aiohttp json_response, like ComfyUI), so the sizes agree up to volatile
    # values. The recorder redacted traceback source lines, so compare with the redacted JSON size.
    if isinstance(expected, dict | list):
        size = len(json.dumps(expected))
        assert abs(got.raw_len - size) <= max(64, size // 50)


def _with_sim_fault_modes(response: Any) -> Any:
    """The simulator's FaultInjection has three extra modes (cuda_error, model_load_error,
    interrupt); a value_not_in_list error for ``mode`` lists them. Everything else is unchanged."""
    text = json.dumps(response)
    recorded_modes = "['pass', 'oom', 'file_not_found', 'runtime_error', 'value_error', 'sleep', 'block']"
    if recorded_modes not in text:
        return response
    text = text.replace(recorded_modes, str(FAULT_MODES))
    text = text.replace(json.dumps(ast.literal_eval(recorded_modes)), json.dumps(FAULT_MODES))
    return json.loads(text)
