"""Notification sinks for tests: an HTTP sink (Slack incoming webhook, Alertmanager webhooks, the
relay's targets) and an SMTP sink (aiosmtpd), both on 127.0.0.1, recording what they receive with
the time it arrived.

SMTP AUTH trap (Alertmanager 0.25): Alertmanager picks the *first* mechanism the server lists, and
aiosmtpd lists LOGIN first, which Alertmanager's LOGIN client cannot complete ("unexpected server
challenge"). The sink therefore offers PLAIN only; Go allows PLAIN without TLS to localhost.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .binaries import free_port


@dataclass(frozen=True)
class HTTPRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time()
    received_mono: float  # time.monotonic()

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _Recorder:
    """A list of received items with a condition variable to wait on."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._cond = threading.Condition()

    def add(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def items(self) -> list[Any]:
        with self._cond:
            return list(self._items)

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float, what: str) -> Any:
        """The first received item (already there or arriving within ``timeout``) that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in self._items:
                    if predicate(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"timed out after {timeout:.1f}s waiting for {what}; got {len(self._items)} item(s)"
                    )
                self._cond.wait(remaining)


class HTTPSink:
    """Answers every POST/PUT with ``status`` (default 200) and records it.

    ``GET /metrics`` answers an empty exposition, so the sink can stand in for a scrape target (for
    example the relay's) as well.
    """

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.path_status: dict[str, int] = {}
        self._recorder = _Recorder()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> HTTPSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                sink._recorder.add(
                    HTTPRequest(
                        method=self.command,
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        received_at=time.time(),
                        received_mono=time.monotonic(),
                    )
                )
                status = sink.path_status.get(self.path.split("?")[0], sink.status)
                payload = b"ok"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = _record
            do_PUT = _record

            def do_GET(self) -> None:
                payload = b"# an HTTP sink, no metrics\n" if self.path.startswith("/metrics") else b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HTTPSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- access
    @property
    def port(self) -> int:
        assert self._server is not None, "sink not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def requests(self, path: str | None = None) -> list[HTTPRequest]:
        """Received POST/PUT requests, optionally only those to ``path`` (query ignored)."""
        items = self._recorder.items()
        return [r for r in items if path is None or r.path.split("?")[0] == path]

    def clear(self) -> None:
        self._recorder.clear()

    def wait_for(
        self, predicate: Callable[[HTTPRequest], bool], timeout: float = 30, what: str = "a request"
    ) -> HTTPRequest:
        return self._recorder.wait_for(predicate, timeout, what)


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    auth_login: str | None
    received_at: float
    received_mono: float

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def part(self, content_type: str) -> str:
        """The decoded text of the first part of ``content_type`` ('text/plain', 'text/html')."""
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part.get_content()
        return ""


@dataclass
class SMTPSink:
    """An aiosmtpd server on 127.0.0.1 that records every message.

    With ``username``/``password`` set, AUTH PLAIN is offered and checked (wrong credentials are
    refused with 535, and the message is then never sent); ``Mail.auth_login`` is the login a
    message was sent under, so a test proves that Alertmanager read its ``auth_password_file``.
    """

    username: str | None = None
    password: str | None = None
    port: int = 0
    auth_failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._recorder = _Recorder()
        self._controller: Any = None

    def start(self) -> SMTPSink:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                login_name = getattr(session, "auth_data", None)
                sink._recorder.add(
                    Mail(
                        mail_from=envelope.mail_from,
                        rcpt_tos=list(envelope.rcpt_tos),
                        message=message,  # type: ignore[arg-type]
                        auth_login=login_name if isinstance(login_name, str) else None,
                        received_at=time.time(),
                        received_mono=time.monotonic(),
                    )
                )
                return "250 Message accepted for delivery"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
            login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
            password = (
                auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
            )
            ok = login == sink.username and password == sink.password
            if not ok:
                sink.auth_failures.append(f"{mechanism} {login!r}")
            # auth_data ends up in session.auth_data, where handle_DATA reads the login
            return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

        params: dict[str, Any] = {}
        if self.username is not None:
            params = {
                "authenticator": authenticator,
                # Not auth_required: aiosmtpd warns on every connection when AUTH is required
                # without TLS. AUTH is still offered and checked; Mail.auth_login shows it was used.
                "auth_require_tls": False,
                "auth_exclude_mechanism": ["LOGIN"],
            }
        self.port = self.port or free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **params)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SMTPSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def messages(self) -> list[Mail]:
        return self._recorder.items()

    def clear(self) -> None:
        self._recorder.clear()

    def wait_for(self, predicate: Callable[[Mail], bool], timeout: float = 30, what: str = "a mail") -> Mail:
        return self._recorder.wait_for(predicate, timeout, what)
