"""The alert relay and fake DingTalk robots, running on their own asyncio loop in a thread.

Why a thread: the benchmarks and the synchronous e2e tests drive everything else (simulator,
exporter, Prometheus, Alertmanager) from plain code, and the relay and the fake robots are aiohttp
servers. One loop in a daemon thread hosts both, the same objects the relay tests use
(``relay.testing``). It lives in the package because tests cannot import ``bench`` (under pytest the
name is tests/bench).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any


class RelayStack:
    """``start()`` → relay on ``self.url`` with one DingTalk target named ``target``."""

    def __init__(
        self,
        workdir: Path,
        token: str,
        target: str = "dingtalk",
        secret: str = "SECbench0000000001",
        keyword: str = "告警",
        scale: float = 1.0,
    ) -> None:
        self.workdir, self.token, self.target = workdir, token, target
        self.secret, self.keyword, self.scale = secret, keyword, scale
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="relay-loop", daemon=True)
        self.robots: Any = None
        self.relay: Any = None
        self.url = ""

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> RelayStack:
        from .config import load_config
        from .server import Relay
        from .testing import FakeRobots, write_relay_config

        self._thread.start()

        async def boot() -> str:
            self.robots = FakeRobots(rate_window_scale=self.scale)
            await self.robots.start()
            url = self.robots.dingtalk(secret=self.secret, keyword=self.keyword)
            spec = {
                self.target: {"type": "dingtalk", "url": url, "secret": self.secret, "keyword": self.keyword}
            }
            path, _ = write_relay_config(self.workdir, spec, token=self.token)
            self.relay = Relay(load_config(path), config_path=path, rate_window_scale=self.scale)
            _, port = await self.relay.start("127.0.0.1", 0)
            return f"http://127.0.0.1:{port}"

        self.url = self.call(boot())
        return self

    def accepted(self) -> list[Any]:
        """Messages the fake DingTalk robot accepted (``.at`` is time.time(), ``.text`` the content)."""
        return list(self.robots.accepted("dingtalk"))

    def rejected(self) -> list[Any]:
        return list(self.robots.rejected("dingtalk"))

    def stop(self) -> None:
        async def down() -> None:
            if self.relay is not None:
                await self.relay.stop()
            if self.robots is not None:
                await self.robots.close()

        try:
            self.call(down(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
