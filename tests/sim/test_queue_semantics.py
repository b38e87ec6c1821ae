"""Property tests of the queue/history/jobs rules against independent reference models."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_exporter.sim import jobs
from comfyui_exporter.sim.queue import MAXIMUM_HISTORY_SIZE, PromptQueue


def _filled(n: int) -> PromptQueue:
    q = PromptQueue()
    for i in range(n):
        q.history[f"p{i}"] = {
            "prompt": [i, f"p{i}", {}, {"create_time": i}, []],
            "outputs": {},
            "status": {"status_str": "success", "completed": True, "messages": []},
            "meta": {},
        }
    return q


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 30),
    max_items=st.one_of(st.none(), st.integers(0, 40)),
    offset=st.one_of(st.none(), st.integers(-3, 40)),
)
def test_history_window_matches_reference(n: int, max_items: int | None, offset: int | None) -> None:
    """``max_items`` alone = newest N; ``offset`` counts from the oldest; negative offset = default."""
    q = _filled(n)
    got = list(q.get_history(max_items=max_items, offset=-1 if offset is None else offset))
    keys = [f"p{i}" for i in range(n)]
    start = offset if offset is not None and offset >= 0 else (n - max_items if max_items is not None else 0)
    start = max(start, 0)
    expected = keys[start:] if max_items is None else keys[start : start + max_items]
    if max_items == 0:
        # ComfyUI only checks the limit after adding an entry, so max_items=0 still returns one.
        expected = keys[start : start + 1]
    assert got == expected


def test_history_cap_evicts_before_insert() -> None:
    q = PromptQueue()
    for i in range(MAXIMUM_HISTORY_SIZE + 50):
        q.put((i, f"p{i}", {}, {}, [], {}))
    import asyncio

    async def drain() -> None:
        while q.pending:
            _, task_id = await q.get()
            q.task_done(task_id, {}, {}, {"status_str": "success", "completed": True, "messages": []})

    asyncio.run(drain())
    assert len(q.history) == MAXIMUM_HISTORY_SIZE + 1
    assert next(iter(q.history)) == "p49"  # insertion (completion) order, oldest evicted first


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.booleans()), min_size=1, max_size=30))
def test_pending_is_a_min_heap_and_number_counts_every_post(entries: list[tuple[int, bool]]) -> None:
    q = PromptQueue()
    numbers = []
    for i, (_, front) in enumerate(entries):
        number = q.next_number(front)
        assert number == (-i if front else i)
        numbers.append(number)
        q.put((number, f"id{i}", {}, {}, [], {}))
    _, pending = q.current_queue()
    assert [p[0] for p in pending] == [item[0] for item in q.pending]  # heap order, as stored
    heap = [p[0] for p in pending]
    assert all(heap[k] <= heap[c] for k in range(len(heap)) for c in (2 * k + 1, 2 * k + 2) if c < len(heap))
    assert sorted(numbers) == [heapq.heappop(heap) for _ in range(len(heap))]


@settings(max_examples=200, deadline=None)
@given(
    status=st.lists(
        st.sampled_from(["pending", "in_progress", "completed", "failed", "bogus", " "]), max_size=4
    ),
    limit=st.one_of(st.none(), st.integers(-2, 5).map(str), st.just("abc")),
    offset=st.one_of(st.none(), st.integers(-3, 5).map(str), st.just("x")),
    sort_by=st.sampled_from([None, "created_at", "execution_duration", "name", "CREATED_AT"]),
)
def test_jobs_query_validation(
    status: list[str], limit: str | None, offset: str | None, sort_by: str | None
) -> None:
    query = {}
    if status:
        query["status"] = ",".join(status)
    if limit is not None:
        query["limit"] = limit
    if offset is not None:
        query["offset"] = offset
    if sort_by is not None:
        query["sort_by"] = sort_by
    statuses = [s.strip() for s in status if s.strip()]
    bad = [s for s in statuses if s not in jobs.ALL_STATUSES]
    try:
        params = jobs.parse_query(query)
    except jobs.JobsError as err:
        message = err.body["error"]
        if bad:
            assert message.startswith(f"Invalid status value(s): {', '.join(bad)}.")
        elif sort_by not in (None, "created_at", "execution_duration", "CREATED_AT"):
            assert message == "sort_by must be 'created_at' or 'execution_duration'"
        elif limit is not None and not limit.lstrip("-").isdigit():
            assert message == "limit must be an integer"
        elif limit is not None and int(limit) <= 0:
            assert message == "limit must be a positive integer"
        else:
            assert message == "offset must be an integer" and offset == "x"
        return
    assert not bad
    assert params["offset"] == (max(0, int(offset)) if offset is not None else 0)
    assert params["limit"] == (int(limit) if limit is not None else None)


def test_jobs_list_sort_and_pagination() -> None:
    q = _filled(7)
    for i, item in enumerate(q.history.values()):
        item["status"]["messages"] = [
            ["execution_start", {"timestamp": 100}],
            ["execution_success", {"timestamp": 100 + (i * 37) % 11 + 1}],
        ]
    params = jobs.parse_query({"sort_by": "execution_duration", "limit": "3", "offset": "2"})
    body = jobs.list_jobs([], [], q.history, params)
    durations = sorted(((i * 37) % 11 + 1 for i in range(7)), reverse=True)
    assert [j["execution_end_time"] - 100 for j in body["jobs"]] == durations[2:5]
    assert body["pagination"] == {"offset": 2, "limit": 3, "total": 7, "has_more": True}
    asc = jobs.list_jobs([], [], q.history, jobs.parse_query({"sort_order": "asc"}))
    assert [j["create_time"] for j in asc["jobs"]] == list(range(7))
