"""``/api/jobs`` and ``/api/jobs/{id}`` as in ComfyUI 0.8.0 (``comfy_execution/jobs.py``).

Later versions are flags: ``cancelled`` (interrupted prompts are ``cancelled``, not ``failed``) and
``previewable`` (0.38: summaries carry ``previewable_outputs_count`` and a queued job's detail
carries its ``workflow``). The cancel endpoints of 0.38 live in ``cancel_jobs``.

The list endpoint deliberately keeps the real cost profile: whenever completed/failed jobs are
requested every history entry is normalized, then sorted, then sliced, so a benchmark against the
simulator sees the same O(history) behaviour as against ComfyUI.
"""

from __future__ import annotations

from typing import Any

PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED = (
    "pending",
    "in_progress",
    "completed",
    "failed",
    "cancelled",
)
ALL_STATUSES = [PENDING, IN_PROGRESS, COMPLETED, FAILED]
PREVIEWABLE = frozenset({"images", "video", "audio"})
THREE_D = (".obj", ".fbx", ".gltf", ".glb")


class JobsError(Exception):
    """Invalid query parameter; ``body`` is the exact 400 JSON body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.body = {"error": message}


def _prune(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _meta(extra_data: dict[str, Any]) -> tuple[Any, Any]:
    workflow = (extra_data.get("extra_pnginfo") or {}).get("workflow") or {}
    return extra_data.get("create_time"), workflow.get("id") if isinstance(workflow, dict) else None


def queue_job(
    item: list[Any], status: str, previewable: bool = False, detail: bool = False
) -> dict[str, Any]:
    """Summary of a pending/running queue item (sensitive element already stripped)."""
    create_time, workflow_id = _meta(item[3])
    job: dict[str, Any] = {
        "id": item[1],
        "status": status,
        "priority": item[0],
        "create_time": create_time,
        "outputs_count": 0,
    }
    if previewable:
        job["previewable_outputs_count"] = 0
    job["workflow_id"] = workflow_id
    job = _prune(job)
    if previewable and detail:
        job["workflow"] = {"prompt": item[2], "extra_data": item[3]}
    return job


def _previewable(media_type: str, entry: dict[str, Any]) -> bool:
    if media_type in PREVIEWABLE:
        return True
    fmt = entry.get("format", "")
    if fmt and (fmt.startswith("video/") or fmt.startswith("audio/")):
        return True
    return entry.get("filename", "").lower().endswith(THREE_D)


def _previewable_count(outputs: dict[str, Any]) -> int:
    """0.38's ``previewable_outputs_count``: output items the frontend can show."""
    return sum(
        1
        for node_outputs in outputs.values()
        if isinstance(node_outputs, dict)
        for media_type, entries in node_outputs.items()
        if media_type != "animated" and isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict) and _previewable(media_type, entry)
    )


def outputs_summary(outputs: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """Count output files and choose the preview (type=output first, then any previewable)."""
    count = 0
    preview = fallback = None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media_type, entries in node_outputs.items():
            if media_type == "animated" or not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                count += 1
                if preview is None and _previewable(media_type, entry):
                    enriched = {**entry, "nodeId": node_id, "mediaType": media_type}
                    if entry.get("type") == "output":
                        preview = enriched
                    elif fallback is None:
                        fallback = enriched
    return count, preview or fallback


def history_job(
    prompt_id: str,
    item: dict[str, Any],
    full: bool = False,
    cancelled: bool = False,
    previewable: bool = False,
) -> dict[str, Any]:
    """Summary (or, with ``full``, detail) of a history entry."""
    priority, _, graph, extra_data, _ = item["prompt"]
    create_time, workflow_id = _meta(extra_data)
    status_info = item.get("status") or {}
    status = FAILED if status_info.get("status_str") == "error" else COMPLETED
    start = end = error = None
    interrupted = False
    for entry in status_info.get("messages", []):
        if isinstance(entry, list | tuple) and len(entry) >= 2 and isinstance(entry[1], dict):
            name, data = entry[0], entry[1]
            if name == "execution_start":
                start = data.get("timestamp")
            elif name in ("execution_success", "execution_error", "execution_interrupted"):
                end = data.get("timestamp")
                if name == "execution_error":
                    error = data
                interrupted = name == "execution_interrupted"
    if cancelled and status == FAILED and interrupted:
        status = CANCELLED
    outputs = item.get("outputs", {})
    count, preview = outputs_summary(outputs)
    job = {
        "id": prompt_id,
        "status": status,
        "priority": priority,
        "create_time": create_time,
        "execution_start_time": start,
        "execution_end_time": end,
        "execution_error": error,
        "outputs_count": count,
    }
    if previewable:
        job["previewable_outputs_count"] = _previewable_count(outputs)
    job = _prune({**job, "preview_output": preview, "workflow_id": workflow_id})
    if full:
        job["outputs"] = outputs
        job["execution_status"] = status_info
        job["workflow"] = {"prompt": graph, "extra_data": extra_data}
    return job


def parse_query(query: Any, cancelled: bool = False) -> dict[str, Any]:
    """Validate the list query exactly like server.py (same order, same messages)."""
    valid = [*ALL_STATUSES, CANCELLED] if cancelled else ALL_STATUSES
    status_param = query.get("status")
    sort_by = query.get("sort_by", "created_at").lower()
    sort_order = query.get("sort_order", "desc").lower()
    status_filter = None
    if status_param:
        status_filter = [s.strip().lower() for s in status_param.split(",") if s.strip()]
        bad = [s for s in status_filter if s not in valid]
        if bad:
            raise JobsError(f"Invalid status value(s): {', '.join(bad)}. Valid values: {', '.join(valid)}")
    if sort_by not in {"created_at", "execution_duration"}:
        raise JobsError("sort_by must be 'created_at' or 'execution_duration'")
    if sort_order not in {"asc", "desc"}:
        raise JobsError("sort_order must be 'asc' or 'desc'")
    limit = None
    if "limit" in query:
        try:
            limit = int(query.get("limit"))
        except (TypeError, ValueError):
            raise JobsError("limit must be an integer") from None
        if limit <= 0:
            raise JobsError("limit must be a positive integer")
    offset = 0
    if "offset" in query:
        try:
            offset = max(0, int(query.get("offset")))
        except (TypeError, ValueError):
            raise JobsError("offset must be an integer") from None
    return {
        "status_filter": status_filter,
        "workflow_id": query.get("workflow_id"),
        "sort_by": sort_by,
        "sort_order": sort_order,
        "limit": limit,
        "offset": offset,
    }


def list_jobs(
    running: list[list[Any]],
    pending: list[list[Any]],
    history: dict[str, Any],
    params: dict[str, Any],
    cancelled: bool = False,
    previewable: bool = False,
) -> dict[str, Any]:
    """Build the ``{"jobs", "pagination"}`` body."""
    wanted = params["status_filter"] or ([*ALL_STATUSES, CANCELLED] if cancelled else ALL_STATUSES)
    jobs: list[dict[str, Any]] = []
    if IN_PROGRESS in wanted:
        jobs += [queue_job(i, IN_PROGRESS, previewable) for i in running]
    if PENDING in wanted:
        jobs += [queue_job(i, PENDING, previewable) for i in pending]
    if COMPLETED in wanted or FAILED in wanted or CANCELLED in wanted:
        for prompt_id, item in history.items():
            job = history_job(prompt_id, item, cancelled=cancelled, previewable=previewable)
            if job["status"] in wanted:
                jobs.append(job)
    if params["workflow_id"]:
        jobs = [j for j in jobs if j.get("workflow_id") == params["workflow_id"]]
    if params["sort_by"] == "execution_duration":

        def key(j: dict[str, Any]) -> Any:
            start, end = j.get("execution_start_time", 0), j.get("execution_end_time", 0)
            return end - start if end and start else 0
    else:

        def key(j: dict[str, Any]) -> Any:
            return j.get("create_time", 0)

    jobs.sort(key=key, reverse=params["sort_order"] == "desc")
    total = len(jobs)
    offset, limit = params["offset"], params["limit"]
    if offset > 0:
        jobs = jobs[offset:]
    if limit is not None:
        jobs = jobs[:limit]
    return {
        "jobs": jobs,
        "pagination": {
            "offset": offset,
            "limit": limit,
            "total": total,
            "has_more": offset + len(jobs) < total,
        },
    }


def get_job(
    job_id: str,
    running: list[list[Any]],
    pending: list[list[Any]],
    history: dict[str, Any],
    cancelled: bool = False,
    previewable: bool = False,
) -> dict[str, Any] | None:
    """One job: history detail first, then running, then pending; None when unknown."""
    if job_id in history:
        return history_job(job_id, history[job_id], full=True, cancelled=cancelled, previewable=previewable)
    for item in running:
        if item[1] == job_id:
            return queue_job(item, IN_PROGRESS, previewable, detail=True)
    for item in pending:
        if item[1] == job_id:
            return queue_job(item, PENDING, previewable, detail=True)
    return None


def cancel_target(job_id: str, running: list[list[Any]], pending: list[list[Any]]) -> str | None:
    """0.38's cancel classification: "running", "pending", or None (finished or unknown: a no-op)."""
    if any(item[1] == job_id for item in running):
        return "running"
    if any(item[1] == job_id for item in pending):
        return "pending"
    return None
