"""Every parser either returns typed events or raises MalformedError: never anything else."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_exporter.model.parsers import (
    MalformedError,
    clean_text,
    parse_history,
    parse_history_item,
    parse_jobs_queue,
    parse_prompt_info,
    parse_queue,
    parse_system_stats,
    parse_ws_text,
)
from tests.support.recordings import history_items

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
# Shapes close to the real ones reach deeper branches than arbitrary JSON does.
messages = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "execution_start",
                "execution_cached",
                "execution_success",
                "execution_error",
                "execution_interrupted",
                "other",
            ]
        ),
        st.dictionaries(
            st.sampled_from(
                ["timestamp", "nodes", "exception_type", "exception_message", "node_type", "node_id"]
            ),
            json_values,
            max_size=4,
        ),
    ).map(list),
    max_size=4,
)
history_like = st.fixed_dictionaries(
    {
        "status": st.fixed_dictionaries(
            {"status_str": st.sampled_from(["success", "error", "x", None]), "messages": messages}
        ),
        "prompt": st.lists(json_values, max_size=5),
    }
)


def _ok_or_malformed(fn, *args) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(MalformedError):
        fn(*args)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_top_level_parsers_never_crash(body: object) -> None:
    for parser in (parse_jobs_queue, parse_queue, parse_prompt_info, parse_system_stats):
        _ok_or_malformed(parser, body, 0.0)
    _ok_or_malformed(parse_history, body)


@settings(max_examples=300, deadline=None)
@given(st.one_of(history_like, st.dictionaries(st.text(max_size=8), json_values, max_size=3)))
def test_history_item_parser_never_crashes(item: dict) -> None:
    _ok_or_malformed(parse_history_item, "p", item, 0.0)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=50),
        json_values.map(json.dumps),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["status", "progress", "progress_state"]), "data": json_values}
        ).map(json.dumps),
    )
)
def test_websocket_parser_never_crashes(frame: str | bytes) -> None:
    _ok_or_malformed(parse_ws_text, frame, 0.0)


@given(st.text(max_size=2000))
def test_clean_text_truncates_and_strips_control_characters(text: str) -> None:
    out = clean_text(text)
    assert len(out) <= 500
    assert all(ch in "\n\t" or ch.isprintable() for ch in out)


def test_recorded_history_items_parse_without_malformed() -> None:
    from tests.support.recordings import case_names

    count = 0
    for case in case_names():
        for prompt_id, item in history_items(case).items():
            parse_history_item(prompt_id, item, 0.0)
            count += 1
    assert count > 30
