"""Queue source: ``/api/jobs?status=pending,in_progress`` (cheap), ``/queue`` on servers before 0.6.0."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..model.events import Event, MalformedMessage
from ..model.parsers import MalformedError, parse_jobs_queue, parse_queue
from .client import ComfyUIClient, PayloadError, RequestFailed

log = logging.getLogger(__name__)


class QueueSource:
    def __init__(self, client: ComfyUIClient, emit: Callable[[Event], None], clock: Callable[[], float]):
        self._client = client
        self._emit = emit
        self._clock = clock
        # None until the first answer: a 404 means ComfyUI < 0.6.0, then /queue is used for good.
        self.jobs_api: bool | None = None

    def poll(self) -> None:
        if self.jobs_api is not False:
            try:
                body = self._client.get_json("/api/jobs", "jobs", params={"status": "pending,in_progress"})
            except RequestFailed as exc:
                if exc.status != 404:
                    raise
                log.info("ComfyUI has no /api/jobs (older than 0.6.0): using /queue for queue state")
                self.jobs_api = False
            except PayloadError as exc:
                self._malformed("jobs", exc)
                return
            else:
                self.jobs_api = True
                self._parse(parse_jobs_queue, body, "jobs")
                return
        try:
            body = self._client.get_json("/queue", "queue")
        except PayloadError as exc:
            self._malformed("queue", exc)
            return
        self._parse(parse_queue, body, "queue")

    def _parse(self, parser, body, source: str) -> None:  # type: ignore[no-untyped-def]
        try:
            self._emit(parser(body, self._clock()))
        except MalformedError as exc:
            self._malformed(source, exc)

    def _malformed(self, source: str, exc: Exception) -> None:
        log.warning("%s response skipped: %s", source, exc)
        self._emit(MalformedMessage(at=self._clock(), source=source))
