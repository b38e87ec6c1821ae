"""Alertmanager webhook payload parser: real 0.25 captures, synthetic payloads, and fuzzing."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_helpers import alert, captured, payload

from comfyui_exporter.relay.payload import PayloadError, parse_payload, parse_time


def test_captured_firing_payload_from_alertmanager_025() -> None:
    p = parse_payload(json.dumps(captured("firing")))
    assert p.status == "firing" and len(p.alerts) == 2 and p.truncated_alerts == 0
    a = p.alerts[0]
    assert a.name == "ComfyUIOutOfMemory" and a.instance == "gpu-box-1" and a.error_type == "oom"
    assert a.severity == "critical" and p.critical
    assert a.annotations["runbook_url"].startswith("https://") and "显存不足" in a.annotations["summary"]
    assert a.starts_at is not None and a.starts_at.tzinfo is not None and a.ends_at is None  # Go zero time
    assert a.fingerprint == "6b0ab9a4381a61b9"
    assert p.group_labels == {"alertname": "ComfyUIOutOfMemory", "comfyui": "gpu-box-1"}
    assert p.external_url.startswith("http://127.0.0.1:")


def test_captured_resolved_payload_from_alertmanager_025() -> None:
    p = parse_payload(json.dumps(captured("resolved")).encode())
    assert p.status == "resolved" and not p.critical
    assert all(a.status == "resolved" and a.ends_at is not None for a in p.alerts)


def test_nanosecond_timestamps_and_offsets() -> None:
    assert parse_time("2026-11-28T02:03:04.123456789Z") == datetime(2026, 11, 28, 2, 3, 4, 123456, UTC)
    assert parse_time("2026-11-28T10:03:04+08:00") == datetime(2026, 11, 28, 2, 3, 4, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("yesterday") is None and parse_time(5) is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[]", "object"),
        (json.dumps({**payload(), "version": "3"}), "version"),
        (json.dumps({**payload(), "alerts": []}), "non-empty"),
        (json.dumps({**payload(), "status": "burning"}), "status"),
        (json.dumps({**payload(), "truncatedAlerts": -1}), "truncatedAlerts"),
        (
            json.dumps({**payload(), "alerts": [{**alert(), "labels": {"alertname": 5}}]}),
            "alerts[0].labels.alertname",
        ),
        (json.dumps(payload({**alert(), "status": "meh"})), "alerts[0].status"),
        (json.dumps(payload({**alert(), "annotations": []})), "alerts[0].annotations"),
    ],
)
def test_malformed_payloads_are_rejected_with_a_reason(body: Any, words: str) -> None:
    with pytest.raises(PayloadError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_payload(body)


def test_lone_surrogates_are_replaced() -> None:
    raw = json.dumps(payload(alert(summary="bad \ud83d tail")))  # JSON \ud83d: valid JSON, not valid UTF-8
    p = parse_payload(raw)
    summary = p.alerts[0].annotations["summary"]
    summary.encode("utf-8")  # must not raise
    assert summary == "bad \ufffd tail"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
label_maps = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=30), max_size=5)


junk = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=6)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


@st.composite
def near_valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly-valid payloads with random holes: the shapes a buggy or hostile sender produces."""
    alerts = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "status": st.sampled_from(["firing", "resolved"]) | junk,
                    "labels": label_maps | junk,
                    "annotations": label_maps | junk,
                    "startsAt": st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "bad"])
                    | junk,
                    "endsAt": st.text(max_size=30),
                    "generatorURL": st.text(max_size=30) | junk,
                    "fingerprint": st.text(max_size=16),
                }
            ),
            max_size=4,
        )
        | junk
    )
    data = {
        "version": draw(st.sampled_from(["4", "4", "3"]) | junk),
        "status": draw(st.sampled_from(["firing", "resolved"]) | junk),
        "alerts": alerts,
        "groupLabels": draw(label_maps | junk),
        "commonLabels": draw(label_maps),
        "commonAnnotations": draw(label_maps),
        "externalURL": draw(st.text(max_size=30)),
        "truncatedAlerts": draw(st.integers(-1, 5) | junk),
        "groupKey": draw(st.text(max_size=20)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(data)), max_size=3)):
        data.pop(key, None)
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_payloads())
def test_fuzz_parser_never_raises_anything_but_payload_error(data: dict[str, Any]) -> None:
    raw = json.dumps(data)
    try:
        p = parse_payload(raw)
    except PayloadError:
        return
    assert p.alerts and p.status in ("firing", "resolved")
    for a in p.alerts:  # everything that survives is typed and UTF-8 safe
        assert a.status in ("firing", "resolved")
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in a.labels.items())
        json.dumps(a.labels, ensure_ascii=False).encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    with contextlib.suppress(PayloadError):
        parse_payload(raw)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["firing", "resolved"]), label_maps, label_maps), min_size=1, max_size=5
    )
)
def test_fuzz_valid_payloads_round_trip(items: list[tuple[str, dict[str, str], dict[str, str]]]) -> None:
    alerts = [
        {
            "status": s,
            "labels": lab,
            "annotations": ann,
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": str(i),
        }
        for i, (s, lab, ann) in enumerate(items)
    ]
    p = parse_payload(json.dumps(payload(*alerts, group={})))
    assert [a.status for a in p.alerts] == [s for s, _, _ in items]
    for a, (_, lab, _ann) in zip(p.alerts, items, strict=True):
        surrogate_free = all(not any(0xD800 <= ord(c) <= 0xDFFF for c in k + v) for k, v in lab.items())
        if surrogate_free:
            assert a.labels == lab
