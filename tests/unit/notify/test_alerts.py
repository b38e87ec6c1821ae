"""The pure alert builder: labels, annotations, times, and the cooldown windows of docs/alerting.md."""

from __future__ import annotations

from datetime import datetime

from comfyui_exporter.model.state import FailureRecord
from comfyui_exporter.notify.alerts import AlertBuilder, cut_message

T0 = 1_800_000_000.0


def _oom(prompt: str, at: float, comfyui: str = "gpu0", error_type: str = "oom") -> FailureRecord:
    return FailureRecord(
        comfyui=comfyui,
        prompt_id=prompt,
        node_id="7",
        node_type="KSampler",
        exception_type="torch.OutOfMemoryError",
        error_type=error_type,
        message="CUDA out of memory. Tried to allocate 2.00 GiB.\nTIPS: lower the batch size.",
        started_at=at - 3,
        finished_at=at,
    )


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_first_failure_has_labels_annotations_and_times() -> None:
    builder = AlertBuilder("http://exporter.internal:9188/", ttl=300, cooldown=300)
    alert = builder.failure(_oom("p1", T0), observed=T0 + 0.4)
    assert alert["labels"] == {
        "alertname": "ComfyUIPromptFailed",
        "comfyui": "gpu0",
        "error_type": "oom",
        "severity": "critical",
        "node_type": "KSampler",
        "event_window": "2027-01-15T08:00:00.000000Z",
        "occurrence": "first",
    }
    a = alert["annotations"]
    assert a["exception_type"] == "torch.OutOfMemoryError"
    assert a["exception_message"].startswith("CUDA out of memory. Tried to allocate 2.00 GiB.")
    assert (a["prompt_id"], a["node_id"]) == ("p1", "7")
    assert a["failures_url"] == "http://exporter.internal:9188/failures?comfyui=gpu0"
    assert a["runbook_url"].endswith("docs/runbooks.md#comfyuipromptfailed")
    # every channel, even an old template that shows only the description, sees exception and prompt id
    assert "p1" in a["description"] and "torch.OutOfMemoryError: CUDA out of memory" in a["description"]
    assert "\n" not in a["description"]
    assert _epoch(alert["startsAt"]) == T0  # ComfyUI's time of the failure
    assert _epoch(alert["endsAt"]) == T0 + 0.4 + 300


def test_severity_follows_the_rules_classes() -> None:
    builder = AlertBuilder("http://x:1")
    assert builder.failure(_oom("a", T0, error_type="cuda_error"), T0)["labels"]["severity"] == "critical"
    assert builder.failure(_oom("b", T0, error_type="model_not_found"), T0)["labels"]["severity"] == "warning"


def test_a_comfyui_clock_ahead_or_far_behind_never_makes_a_resolved_alert() -> None:
    builder = AlertBuilder("http://x:1", ttl=300)
    late = builder.failure(_oom("a", T0 - 3600), observed=T0)
    assert _epoch(late["endsAt"]) == T0 + 300
    ahead = builder.failure(_oom("b", T0 + 50, comfyui="other"), observed=T0)
    assert _epoch(ahead["startsAt"]) == T0


def test_cooldown_first_then_one_folded_alert_then_a_new_window() -> None:
    builder = AlertBuilder("http://x:1", ttl=300, cooldown=300)
    first = builder.failure(_oom("p1", T0), T0)
    folded = [builder.failure(_oom(f"p{i}", T0 + i), T0 + i) for i in range(2, 15)]
    # one identity for all folded ones: Alertmanager keeps one alert and sends it at the group's tick
    identities = {tuple(sorted(f["labels"].items())) for f in folded}
    assert len(identities) == 1
    last = folded[-1]
    assert last["labels"]["occurrence"] == "repeated"
    assert last["labels"]["event_window"] == first["labels"]["event_window"]
    assert last["annotations"]["count"] == "13"
    ids = last["annotations"]["prompt_ids"].split(",")
    assert ids[0] == "p14" and len(ids) == 10  # newest first, bounded
    # still active at the tick that sends it (cooldown after the first flush), then for ttl
    assert _epoch(last["endsAt"]) == T0 + 300 + 300
    assert _epoch(last["startsAt"]) == T0 + 2
    after = builder.failure(_oom("late", T0 + 301), T0 + 301)
    assert after["labels"]["occurrence"] == "first"
    assert after["labels"]["event_window"] != first["labels"]["event_window"]
    # another class or instance has its own window
    other = builder.failure(_oom("x", T0 + 5, comfyui="gpu1"), T0 + 5)
    assert other["labels"]["occurrence"] == "first"


def test_rejection_alert() -> None:
    record = FailureRecord(
        comfyui="gpu0",
        prompt_id="r1",
        node_id="4",
        node_type="CheckpointLoaderSimple",
        exception_type=None,
        error_type="value_not_in_list",
        message="Value not in list: ckpt_name: 'missing.safetensors' not in []",
        started_at=None,
        finished_at=T0,
        kind="rejection",
        input_name="ckpt_name",
    )
    alert = AlertBuilder("http://x:1").failure(record, T0)
    assert alert["labels"]["alertname"] == "ComfyUIPromptRejected"
    assert alert["labels"]["reason"] == "value_not_in_list" and alert["labels"]["severity"] == "warning"
    assert "ckpt_name" in alert["annotations"]["description"]
    assert "exception_type" not in alert["annotations"]


def test_lost_prompts_alert() -> None:
    alert = AlertBuilder("http://x:1").lost("gpu0", T0, ["run1"], ["p1", "p2"])
    assert alert["labels"]["alertname"] == "ComfyUIPromptsLost"
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["prompt_ids"] == "run1,p1,p2"
    assert "lost 1 running and 2 pending" in alert["annotations"]["description"]


def test_cut_keeps_the_first_line_whole_then_cuts_at_a_word() -> None:
    first = "RuntimeError: " + "x" * 100
    rest = " ".join(["word"] * 200)
    cut = cut_message(first + "\n" + rest, limit=300)
    assert cut.startswith(first + "\nword")
    assert cut.endswith(" …") and len(cut) <= 302
    assert cut[:-2].endswith("word")  # never mid-word
    long_first = "y" * 450
    assert cut_message(long_first + "\nmore", limit=300) == long_first + " …"
    assert cut_message("short") == "short"
