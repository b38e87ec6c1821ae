"""parse_batch / StreamCursor: exact record API, recorded rejections, and hypothesis fuzzing."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_exporter.comfyui_plugin.summarize import no_prompt_fields, rejection_fields
from comfyui_exporter.model.plugin_records import (
    FINISH_STATUSES,
    REJECT_REASONS,
    VRAM_GUARD_ACTIONS,
    VRAM_GUARD_OUTCOMES,
    NodeError,
    NodeFinished,
    NodeStarted,
    ParseStats,
    Progress,
    PromptFinished,
    PromptRejected,
    PromptStarted,
    PromptSubmitted,
    StreamGap,
    StreamReset,
    VramGuardTrip,
    parse_batch,
)
from comfyui_exporter.sources.plugin_stream import StreamCursor

from .harness import recorded_submissions

TS = 1_800_000_000.5


def ev(seq: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": TS, "kind": kind, **fields}


def batch(*events: dict[str, Any], boot: str = "b1", seq: int | None = None) -> dict[str, Any]:
    newest = seq if seq is not None else max([e["seq"] for e in events], default=0)
    return {"plugin_version": "1", "boot_id": boot, "seq": newest, "oldest_seq": 1, "events": list(events)}


def test_every_kind_parses_into_its_record() -> None:
    records = parse_batch(batch(
        ev(1, "prompt_submitted", prompt_id="p", number=3, create_time_ms=1_800_000_000_000,
           has_client_id=True, nodes=3),
        ev(2, "prompt_started", prompt_id="p", queue_wait_s=0.25),
        ev(3, "node_started", prompt_id="p", node_id="4", node_type="KSampler"),
        ev(4, "progress", prompt_id="p", node_id="4", value=5, max=20),
        ev(5, "node_finished", prompt_id="p", node_id="4", node_type=None, seconds=1.5),
        ev(6, "prompt_finished", prompt_id="p", status="error", seconds=2.0,
           exception_type="torch.OutOfMemoryError", node_id="4", node_type="KSampler",
           message="CUDA out of memory."),
        ev(7, "vram_guard_trip", prompt_id="p", node_id="2", action="free", free_bytes=1, required_bytes=2,
           outcome="insufficient", free_after_bytes=1, device="cuda:0", message="low"),
        ev(8, "prompt_rejected", **no_prompt_fields()),
    ))
    assert records == [
        PromptSubmitted(1, TS, "p", 3, 1_800_000_000.0, True),
        PromptStarted(2, TS, "p", 0.25),
        NodeStarted(3, TS, "p", "4", "KSampler"),
        Progress(4, TS, "p", "4", 5.0, 20.0),
        NodeFinished(5, TS, "p", "4", "unknown", 1.5),
        PromptFinished(6, TS, "p", "error", 2.0, "torch.OutOfMemoryError", "4", "KSampler",
                       "CUDA out of memory."),
        VramGuardTrip(7, TS, "p", "2", "free", 1, 2, "insufficient", 1, "cuda:0", "low"),
        PromptRejected(8, TS, None, "no_prompt", "no_prompt", None, None, "No prompt provided", False, ()),
    ]


def test_recorded_rejections_map_to_bounded_reasons() -> None:
    reasons = []
    for i, case in enumerate(recorded_submissions(), start=1):
        body = case["request_body"]
        if case["status"] != 400 or not isinstance(body, dict) or "prompt" not in body:
            continue
        r = case["response"]
        fields = rejection_fields("pid", body["prompt"], (False, r["error"], [], r["node_errors"]))
        [record] = parse_batch(batch(ev(i, "prompt_rejected", **fields)))
        assert record.reason in REJECT_REASONS and record.error_type == r["error"]["type"]
        reasons.append(record.reason)
        if record.input_name == "ckpt_name":  # the missing checkpoint, recorded twice
            name = body["prompt"]["4"]["inputs"]["ckpt_name"]
            text = f"Value not in list (ckpt_name: '{name}' not in [])"
            assert record == PromptRejected(
                i, TS, "pid", "value_not_in_list", "prompt_outputs_failed_validation",
                "CheckpointLoaderSimple", "ckpt_name", text, False,
                (NodeError("4", "CheckpointLoaderSimple", "value_not_in_list", "ckpt_name", text),))
    assert sorted(set(reasons)) == sorted({
        "value_not_in_list", "invalid_prompt", "prompt_no_outputs", "exception_during_validation",
        "required_input_missing", "invalid_input_type", "value_bigger_than_max", "return_type_mismatch"})
    unknown = parse_batch(batch(ev(1, "prompt_rejected", error_type="brand_new", node_errors=[
        {"type": "brand_new_reason", "node_type": "X", "message": "m"}])))
    assert (unknown[0].reason, unknown[0].error_type) == ("other", "other")


def test_malformed_events_are_counted_and_skipped() -> None:
    stats = ParseStats()
    records = parse_batch(batch(
        ev(1, "node_finished", prompt_id="p", node_id="1", node_type="A", seconds=-1),
        ev(2, "progress", prompt_id="p", node_id="1", value="3", max=4),
        {"seq": True, "ts": TS, "kind": "progress"},
        ev(4, "vram_guard_trip", action="explode", free_bytes=1, required_bytes=2, outcome="warned"),
        ev(5, "future_kind", anything=1),
        ev(6, "prompt_started", prompt_id="p"),
    ), stats)
    assert records == [PromptStarted(6, TS, "p", None)]
    assert (stats.malformed, stats.unknown_kind) == (4, 1)
    assert parse_batch("not a batch", stats) == [] and stats.malformed == 5


def test_cursor_reports_gaps_resets_and_never_delivers_twice() -> None:
    cursor = StreamCursor()
    cursor.start(batch(seq=7))
    assert (cursor.boot_id, cursor.last_seq) == ("b1", 7)
    started = ev(8, "prompt_started", prompt_id="p")
    assert cursor.advance(batch(started)) == [PromptStarted(8, TS, "p", None)]
    assert cursor.advance(batch(started)) == []  # a repeat is dropped
    out = cursor.advance(batch(ev(12, "prompt_started", prompt_id="q")))
    assert out == [StreamGap(9, 12, 3), PromptStarted(12, TS, "q", None)]
    out = cursor.advance(batch(ev(3, "prompt_started", prompt_id="r"), boot="b2"))
    assert out == [StreamReset("b1", "b2"), StreamGap(1, 3, 2), PromptStarted(3, TS, "r", None)]
    assert cursor.params() == {"after": 3, "boot": "b2"}


SCALAR = (st.none() | st.booleans() | st.integers(-5, 60) | st.floats() | st.text(max_size=6)
          | st.sampled_from(["warn", "free", "failed", "insufficient", "success", "value_not_in_list", "4"]))
JSON = st.recursive(SCALAR, lambda children: (st.lists(children, max_size=4)
                                              | st.dictionaries(st.text(max_size=8), children, max_size=4)),
                    max_leaves=12)
ID = st.text(min_size=1, max_size=20)
TEXT = st.text(max_size=400)
SECONDS = st.floats(0, 1e5)
OPT = st.none
NODE_ERROR = st.fixed_dictionaries({"node_id": ID, "node_type": ID,
                                    "type": st.sampled_from(REJECT_REASONS) | ID,
                                    "message": TEXT, "details": TEXT, "input_name": ID | OPT()})
VALID = {  # the plugin's v1 event fields, every optional one sometimes None
    "prompt_submitted": {"prompt_id": ID, "number": st.integers(-5, 100) | OPT(),
                         "create_time_ms": st.integers(0, 2 * 10**12) | OPT(),
                         "has_client_id": st.booleans()},
    "prompt_started": {"prompt_id": ID, "queue_wait_s": SECONDS | OPT()},
    "prompt_finished": {"prompt_id": ID | OPT(), "status": st.sampled_from(FINISH_STATUSES),
                        "seconds": SECONDS | OPT(), "exception_type": ID | OPT(), "node_id": ID | OPT(),
                        "node_type": ID | OPT(), "message": TEXT | OPT()},
    "prompt_rejected": {"prompt_id": ID | OPT(), "error_type": st.sampled_from(REJECT_REASONS) | ID,
                        "message": TEXT | OPT(), "details": TEXT | OPT(), "partial": st.booleans(),
                        "node_errors": st.lists(NODE_ERROR, max_size=4)},
    "node_started": {"prompt_id": ID, "node_id": ID, "node_type": ID | OPT()},
    "node_finished": {"prompt_id": ID, "node_id": ID, "node_type": ID | OPT(), "seconds": SECONDS},
    "progress": {"prompt_id": ID, "node_id": ID, "value": SECONDS | st.integers(0, 10**6),
                 "max": SECONDS | st.integers(0, 10**6)},
    "vram_guard_trip": {"prompt_id": ID | OPT(), "node_id": ID | OPT(),
                        "action": st.sampled_from(VRAM_GUARD_ACTIONS), "free_bytes": st.integers(0, 2**50),
                        "required_bytes": st.integers(0, 2**50),
                        "outcome": st.sampled_from(VRAM_GUARD_OUTCOMES),
                        "free_after_bytes": st.integers(0, 2**50) | OPT(), "device": ID | OPT(),
                        "message": TEXT | OPT()},
}
TYPE_OF = {"prompt_submitted": PromptSubmitted, "prompt_started": PromptStarted,
           "prompt_finished": PromptFinished, "prompt_rejected": PromptRejected, "node_started": NodeStarted,
           "node_finished": NodeFinished, "progress": Progress, "vram_guard_trip": VramGuardTrip}
VALID_EVENT = st.sampled_from(sorted(VALID)).flatmap(
    lambda kind: st.fixed_dictionaries({"kind": st.just(kind), "ts": st.floats(0, 2e9), **VALID[kind]}))
# one field replaced by junk, or removed
MUTATED_EVENT = VALID_EVENT.flatmap(lambda e: st.sampled_from(sorted(e)).flatmap(
    lambda key: st.one_of(st.just({k: v for k, v in e.items() if k != key}),
                          JSON.map(lambda v: {**e, key: v}))))


def _numbered(events: list[dict[str, Any]]) -> dict[str, Any]:
    return batch(*[{**e, "seq": i} for i, e in enumerate(events, start=1)])


@settings(max_examples=150, deadline=None)
@given(st.lists(VALID_EVENT, min_size=1, max_size=10))
def test_every_valid_event_parses_to_the_record_of_its_kind(events: list[dict[str, Any]]) -> None:
    stats = ParseStats()
    records = parse_batch(_numbered(events), stats)
    assert (stats.malformed, stats.unknown_kind) == (0, 0)
    assert [type(r) for r in records] == [TYPE_OF[e["kind"]] for e in events]
    assert [r.seq for r in records] == list(range(1, len(events) + 1))
    for r, e in zip(records, events, strict=True):
        assert r.ts == e["ts"]
        assert getattr(r, "prompt_id", None) == (e["prompt_id"][:120] if e.get("prompt_id") else None)
        if isinstance(r, PromptRejected):
            assert r.reason in REJECT_REASONS and len(r.message) <= 300
            assert len(r.node_errors) == len(e["node_errors"])


@settings(max_examples=200, deadline=None)
@given(st.one_of(JSON, st.lists(MUTATED_EVENT | JSON, max_size=8).map(lambda evs: {"events": evs}),
                 st.lists(MUTATED_EVENT, max_size=8).map(_numbered)))
def test_parse_batch_never_raises_on_junk(payload: Any) -> None:
    stats = ParseStats()
    records = parse_batch(payload, stats)
    events = payload.get("events") if isinstance(payload, dict) else None
    if isinstance(events, list):
        assert len(records) + stats.malformed + stats.unknown_kind == len(events)
    else:
        assert records == [] and stats.malformed == 1
    for r in records:
        assert isinstance(r, tuple(TYPE_OF.values())) and r.seq > 0 and r.ts >= 0
        if isinstance(r, PromptRejected):
            assert r.reason in REJECT_REASONS and r.error_type in REJECT_REASONS
        if isinstance(r, NodeFinished):
            assert r.seconds >= 0 and isinstance(r.node_type, str)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["b1", "b2", "b3"]),
                          st.lists(st.integers(1, 60), max_size=10)), max_size=8))
def test_cursor_accounts_for_every_sequence_number(batches: list[tuple[str, list[int]]]) -> None:
    cursor = StreamCursor()
    cursor.start(batch(boot="b1", seq=0))
    for boot, seqs in batches:
        before_boot, before_seq = cursor.boot_id, cursor.last_seq
        events = [ev(s, "prompt_started", prompt_id=str(s)) for s in sorted(set(seqs))]
        out = cursor.advance(batch(*events, boot=boot))
        delivered = [r.seq for r in out if isinstance(r, PromptStarted)]
        assert delivered == sorted(delivered) and len(set(delivered)) == len(delivered)
        reset = boot != before_boot
        assert any(isinstance(r, StreamReset) for r in out) == reset
        floor = 0 if reset else before_seq
        assert delivered == [s for s in sorted(set(seqs)) if s > floor]
        missed = sum(r.missed for r in out if isinstance(r, StreamGap))
        assert missed + len(delivered) == cursor.last_seq - floor
