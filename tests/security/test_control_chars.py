"""No control characters from ComfyUI reach /failures or the exporter's log lines.

ComfyUI's error texts, node types and even prompt ids (``POST /prompt`` accepts a client-chosen
``prompt_id``) are attacker-controlled strings. An ESC sequence, CR or bidi override in them must not
reach a terminal through the log, nor a chat message through /failures and the relay. Newline and
tab stay allowed in ``message`` only (multi-line CUDA errors are legitimate).
"""

from __future__ import annotations

import logging
import unicodedata

import pytest
import requests

from comfyui_exporter.model.events import Outcome
from comfyui_exporter.model.parsers import parse_history_item
from comfyui_exporter.model.state import InstanceState
from comfyui_exporter.sim.control import fault_graph
from comfyui_exporter.sim.testing import running_sim
from comfyui_exporter.sources.history import HistorySource
from tests.support.stack import running_exporter, wait_until

NASTY = "\x1b[2J\x1b[31mred\r\nFAKE LOG LINE level=error\x07\x00\x7f\x9b\u202eevil\u2028"


def control_chars(text: str, allow: str = "") -> list[str]:
    """Characters a terminal or chat client would interpret: categories Cc, Cf, Zl, Zp."""
    return [
        repr(ch) for ch in text if ch not in allow and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
    ]


def history_item(node_type: str, exception_type: str, message: str, node_id: str) -> dict:
    return {
        "prompt": [1, "x", {}, {"create_time": 1_700_000_000_000}, []],
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [
                ["execution_start", {"prompt_id": "x", "timestamp": 1_700_000_000_100}],
                [
                    "execution_error",
                    {
                        "prompt_id": "x",
                        "node_id": node_id,
                        "node_type": node_type,
                        "exception_type": exception_type,
                        "exception_message": message,
                        "timestamp": 1_700_000_000_200,
                    },
                ],
            ],
        },
        "outputs": {},
    }


def failure_json(prompt_id: str, **fields: str) -> dict:
    item = history_item(
        fields.get("node_type", "KSampler"),
        fields.get("exception_type", "RuntimeError"),
        fields.get("message", "boom"),
        fields.get("node_id", "3"),
    )
    state = InstanceState("gpu0")
    event = parse_history_item(prompt_id, item, 1_700_000_001.0)
    assert event.outcome is Outcome.ERROR
    state.apply(event)
    return state.recent_failures[-1].as_json()


def test_message_is_cleaned() -> None:
    record = failure_json("p1", message="CUDA error\n\tdetail " + NASTY * 50)
    assert control_chars(record["message"], allow="\n\t") == []
    assert len(record["message"]) <= 500
    assert record["message"].startswith("CUDA error\n\tdetail")


@pytest.mark.parametrize("field", ["prompt_id", "node_type", "exception_type", "node_id"])
def test_identifiers_are_cleaned(field: str) -> None:
    record = failure_json(
        NASTY if field == "prompt_id" else "p1", **({field: NASTY} if field != "prompt_id" else {})
    )
    assert control_chars(str(record[field])) == []


def test_log_line_for_a_malformed_entry_has_no_control_chars(caplog: pytest.LogCaptureFixture) -> None:
    class Client:
        def get_json(self, *_args: object, **_kwargs: object) -> dict:
            return {NASTY: {"status": "not an object"}}

    class Tracker:
        baseline_done = True

        def first_request_size(self, _expected: int | None = 0) -> int:
            return 1

        def step(self, entries, n, at):  # type: ignore[no-untyped-def]
            return type("Step", (), {"more": None, "events": [], "new": entries})()

    source = HistorySource(Client(), Tracker(), lambda _e: None, lambda: 0.0)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        source.poll()
    lines = [logging.Formatter("%(message)s").format(r) for r in caplog.records]
    assert lines and all(control_chars(line) == [] for line in lines), lines


def test_failures_endpoint_end_to_end() -> None:
    """A real prompt with a hostile client-chosen prompt_id fails in the simulator; /failures is clean."""
    with (
        running_sim() as sim,
        running_exporter(
            "--comfyui-url", f"sim={sim.url}", "--poll-interval", "0.2", "--debounce", "0.02"
        ) as exporter,
    ):
        wait_until(lambda: exporter.value("comfyui_up", comfyui="sim") == 1, what="up")
        body = {"prompt": fault_graph("runtime_error", 0.0, 0, 7), "prompt_id": "p-" + NASTY}
        status, answer = sim.request("POST", "/prompt", body)
        assert status == 200, answer
        wait_until(lambda: exporter.failures(), 15, what="failure in /failures")
        raw = requests.get(exporter.url + "/failures", timeout=5)
        for record in raw.json()["failures"]:
            for key, value in record.items():
                if isinstance(value, str):
                    allow = "\n\t" if key == "message" else ""
                    assert control_chars(value, allow) == [], (key, value)
        assert control_chars(exporter.logs(), allow="\n") == []
