"""Counting a failure never waits on Alertmanager: a hanging Alertmanager leaves the poll thread free."""

from __future__ import annotations

import socket
import time

from comfyui_exporter.config.args import parse_config
from comfyui_exporter.model.events import ErrorType, FailureDetail, Outcome, PromptFinished
from comfyui_exporter.notify.notifier import EventNotifier
from comfyui_exporter.wiring.watcher import InstanceWatcher


def test_a_hanging_alertmanager_does_not_block_the_watcher() -> None:
    with socket.socket() as hang:  # accepts connections (backlog) and never answers
        hang.bind(("127.0.0.1", 0))
        hang.listen(16)
        url = f"http://127.0.0.1:{hang.getsockname()[1]}"
        config, _ = parse_config(
            [
                "--comfyui-url",
                "w=http://127.0.0.1:9",
                "--alertmanager.url",
                url,
                "--alertmanager.timeout",
                "30s",
            ],
            environ={},
        )
        notifier = EventNotifier(config)
        notifier.start()
        watcher = InstanceWatcher(config.instances[0], config, notifier=notifier)
        try:
            failure = FailureDetail(
                "3", "KSampler", "torch.OutOfMemoryError", "CUDA out of memory", ErrorType.OOM
            )
            started = time.monotonic()
            for i in range(200):
                watcher._emit(
                    PromptFinished(100.0 + i, f"p{i}", Outcome.ERROR, 99.0, 100.0 + i, 98.0, 0, failure)
                )
            elapsed = time.monotonic() - started
            assert elapsed < 1.0, f"200 failures took {elapsed:.2f} s to count"
            assert watcher.instance.state.failures["oom"] == 200
            worker = notifier.sender.workers[0]
            # every alert waits (the batch in flight on the hanging connection stays queued until it is
            # done) or was replaced by a newer version of itself (the folded alert's count)
            assert worker.stats.queued + worker.stats.coalesced == 200
            assert worker.stats.queued <= 66
            assert worker.stats.sent == 0
        finally:
            notifier.stop(timeout=0.2)
            watcher.client.close()
