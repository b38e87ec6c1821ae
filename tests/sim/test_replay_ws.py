"""Websocket frames each recorded client received, compared with what the simulator sent it.

Cases whose event count depends on timing (an interrupt or a reconnect mid-run, a long queue)
are compared on the event sequence with progress runs collapsed, plus the exact sequence of
``queue_remaining`` values; all other cases frame by frame, payloads included.
"""

from __future__ import annotations

from typing import Any

import pytest

from .compare import comparable_frame, diff, loose_tokens, remap_ids, status_values, ws_frames
from .conftest import REPLAY_FIXTURE
from .replay import RECORDED_VERSIONS, load_case, order, transcripts

TIMING_DEPENDENT = {
    "interrupt_during_slow_node",
    "interrupt_targeted_and_no_client_id",
    "queue_multiple_prompts",
    "reconnect_during_execution",
    "shared_client_id_takeover",
    "queue_and_history_management",
}
LOGS_CASE = "ws_handshake_and_logs"


def _clients() -> list[Any]:
    return [
        pytest.param(version, name, client, id=f"{version}-{name}-{client}")
        for version in RECORDED_VERSIONS
        if transcripts(version).is_dir()
        for name in order(version)
        if name != "history_scaling_timings"
        for client in load_case(name, version)["ws"]
    ]


@pytest.mark.parametrize(("version", "case_name", "client"), _clients())
def test_replay_ws_matches_recording(
    request: pytest.FixtureRequest, version: str, case_name: str, client: str
) -> None:
    replayed: dict[str, Any] = request.getfixturevalue(REPLAY_FIXTURE[version])
    recorded = ws_frames(load_case(case_name, version)["ws"][client])
    got = [dict(f) for f in ws_frames(replayed["results"][case_name].ws[client])]
    for f in got:
        if f["frame"] == "text":
            f["message"] = remap_ids(f["message"], replayed["id_map"])
        elif "metadata" in f:
            f["metadata"] = remap_ids(f["metadata"], replayed["id_map"])
    if case_name in TIMING_DEPENDENT:
        assert loose_tokens(got) == loose_tokens(recorded)
        assert status_values(got) == status_values(recorded)
        shapes = [comparable_frame(f) for f in recorded]
        for frame in got:  # every payload has the shape of some recorded payload of its type
            msg = comparable_frame(frame)
            same_type = [r for r in shapes if r.get("type") == msg.get("type")]
            assert any(diff(r, msg, values=False) == [] for r in same_type), msg
        return
    assert [
        f["frame"] + ":" + str(comparable_frame(f).get("type", comparable_frame(f).get("event_type")))
        for f in got
    ] == [
        f["frame"] + ":" + str(comparable_frame(f).get("type", comparable_frame(f).get("event_type")))
        for f in recorded
    ]
    for rec, mine in zip(recorded, got, strict=True):
        a, b = comparable_frame(rec), comparable_frame(mine)
        if case_name == LOGS_CASE and a.get("type") == "logs":
            assert diff(a, b, values=False) == []
            continue
        problems = diff(a, b)
        assert problems == [], "\n".join(problems[:20])
