"""HTTP access to one ComfyUI: timing, size limits and failure accounting in one place.

Every request emits a ``RequestObserved`` event (that is what ``comfyui_up`` and the
``comfyui_exporter_request*`` series are made of), responses are read with a byte limit so a
runaway payload cannot take the exporter's memory, and secrets in headers never reach a log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from ..config.settings import InstanceConfig
from ..model.events import Event, RequestObserved

log = logging.getLogger(__name__)


class RequestFailed(Exception):
    """ComfyUI did not answer, or answered with an error status."""

    def __init__(self, endpoint: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint = endpoint
        self.status = status


class PayloadError(Exception):
    """ComfyUI answered 200 but the body is not usable JSON (or is over the size limit)."""


class ComfyUIClient:
    def __init__(
        self,
        instance: InstanceConfig,
        emit: Callable[[Event], None],
        timeout: float = 10.0,
        max_response_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = instance.url.rstrip("/")
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._emit = emit
        self._clock = clock
        self._session = make_session(instance)

    def close(self) -> None:
        self._session.close()

    def get_json(self, path: str, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode JSON; ``RequestFailed`` for transport/status errors, ``PayloadError`` for bodies."""
        started = time.perf_counter()
        ok = False
        try:
            try:
                response = self._session.get(
                    self.base_url + path, params=params, timeout=self.timeout, stream=True
                )
            except requests.RequestException as exc:
                raise RequestFailed(endpoint, type(exc).__name__) from None
            with response:
                if response.status_code != 200:
                    raise RequestFailed(endpoint, f"HTTP {response.status_code}", response.status_code)
                body = self._read_limited(response, endpoint)
            ok = True  # ComfyUI answered; a bad body is counted as malformed, not as "down"
            try:
                return json.loads(body)
            except ValueError as exc:
                raise PayloadError(f"{endpoint}: invalid JSON ({exc.msg})") from None
        finally:
            self._emit(
                RequestObserved(
                    at=self._clock(), endpoint=endpoint, seconds=time.perf_counter() - started, ok=ok
                )
            )

    def _read_limited(self, response: requests.Response, endpoint: str) -> bytes:
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(chunk_size=256 * 1024):
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise PayloadError(f"{endpoint}: response larger than {self.max_response_bytes} bytes")
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise RequestFailed(endpoint, f"reading body: {type(exc).__name__}") from None
        return b"".join(chunks)


def make_session(instance: InstanceConfig, user_agent: str = "comfyui-exporter") -> requests.Session:
    """A session with the instance's headers and TLS settings: every HTTP path to ComfyUI uses one."""
    session = requests.Session()
    session.headers.update(instance.headers)
    session.headers["User-Agent"] = user_agent
    tls = instance.tls
    if tls.insecure_skip_verify:
        session.verify = False
    elif tls.ca_file:
        session.verify = tls.ca_file
    if tls.cert_file:
        session.cert = (tls.cert_file, tls.key_file) if tls.key_file else tls.cert_file
    return session
