"""SIGHUP reload: instances added/removed/changed without a restart, state kept where the URL is the same."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from comfyui_exporter.cli.lifecycle import apply_reload, make_reloader, plan_reload, run_until_stopped
from comfyui_exporter.config.args import parse_config
from comfyui_exporter.sim.testing import running_sim
from comfyui_exporter.wiring.app import Exporter

from .conftest import wait_for

FAST = ["--poll-interval", "0.2", "--debounce", "0.02", "--no-gpu", "--listen", "127.0.0.1:0"]


def config_for(*urls: str, extra: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    argv = [*(a for u in urls for a in ("--comfyui-url", u)), *FAST, *extra]
    return parse_config(argv, {})[0]


def value(exporter: Exporter, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(generate_latest(exporter.registry).decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_plan_reload_diff() -> None:
    old = config_for("a=http://127.0.0.1:1", "b=http://127.0.0.1:2", "c=http://127.0.0.1:3")
    new = config_for(
        "a=http://127.0.0.1:1",
        "b=http://127.0.0.1:22",
        "c=http://127.0.0.1:3@GPU-1",
        "d=http://127.0.0.1:4",
        extra=("--poll-interval", "1", "--listen", "127.0.0.1:9999"),
    )
    plan = plan_reload(old, new)
    assert plan.added == ("d",) and plan.removed == ()
    assert plan.url_changed == ("b",) and plan.reconnect == ("c",)
    assert plan.settings == ("poll_interval",)
    assert plan.needs_restart == ("listen_port",)
    assert "added d" in plan.describe() and "NOT applied until a restart: listen_port" in plan.describe()
    assert not plan_reload(old, old).changes_anything
    assert plan_reload(old, old).describe() == "nothing changed"
    # Any other changed field is fixed at start: reported, not silently ignored.
    assert plan_reload(old, dataclasses.replace(old, gpu_enabled=True)).needs_restart == ("gpu_enabled",)
    header = dataclasses.replace(old, instances=(dataclasses.replace(old.instances[0], headers={"X": "1"}),))
    assert plan_reload(old, header).reconnect == ("a",)
    assert plan_reload(old, header).removed == ("b", "c")


def test_apply_reload_keeps_state_where_the_url_is_the_same() -> None:
    with running_sim() as a, running_sim() as b, running_sim() as c:
        exporter = Exporter(config_for(f"a={a.url}", f"b={b.url}"))
        exporter.start()
        try:
            wait_for(lambda: value(exporter, "comfyui_up", comfyui="a") == 1, 10, "a up")
            wait_for(lambda: value(exporter, "comfyui_up", comfyui="b") == 1, 10, "b up")
            a.enqueue(outcome="oom")
            wait_for(
                lambda: value(exporter, "comfyui_prompt_failures_total", comfyui="a", error_type="oom") == 1,
                10,
            )
            old_a = next(w for w in exporter.watchers if w.name == "a")
            # a: new header (a rotated token) -> rebuilt around the same state; b: removed; c: added.
            new = config_for(
                f"a={a.url}", f"c={c.url}", extra=("--comfyui-header", "X-Token: 2", "--poll-interval", "0.1")
            )
            plan = plan_reload(exporter.config, new)
            assert plan.reconnect == ("a",) and plan.removed == ("b",) and plan.added == ("c",)
            apply_reload(exporter, plan)
            assert [w.name for w in exporter.watchers] == ["a", "c"]
            new_a = exporter.watchers[0]
            assert new_a is not old_a and new_a.instance is old_a.instance
            assert new_a.tracker is not old_a.tracker and new_a.tracker.baseline_done
            assert new_a.client._session.headers["X-Token"] == "2"
            assert exporter.config.poll_interval == 0.1
            wait_for(lambda: value(exporter, "comfyui_up", comfyui="c") == 1, 10, "c up")
            assert value(exporter, "comfyui_up", comfyui="b") is None
            # No counter reset and no new baseline: the old failure still counts, a new one adds to it.
            assert value(exporter, "comfyui_prompt_failures_total", comfyui="a", error_type="oom") == 1
            a.enqueue(outcome="oom")
            wait_for(
                lambda: value(exporter, "comfyui_prompt_failures_total", comfyui="a", error_type="oom") == 2,
                10,
            )
            assert value(exporter, "comfyui_restarts_total", comfyui="a") == 0
            # A new URL under the same name is a different ComfyUI: watched from scratch.
            plan = plan_reload(exporter.config, config_for(f"a={b.url}", f"c={c.url}"))
            assert plan.url_changed == ("a",)
            apply_reload(exporter, plan)
            wait_for(lambda: value(exporter, "comfyui_up", comfyui="a") == 1, 10, "a up again")
            assert value(exporter, "comfyui_prompt_failures_total", comfyui="a", error_type="oom") == 0
            # /failures can be turned off by a reload
            assert exporter.server is not None and exporter.server.failures is not None
            apply_reload(
                exporter,
                plan_reload(
                    exporter.config, config_for(f"a={b.url}", f"c={c.url}", extra=("--web.disable-failures",))
                ),
            )
            assert exporter.server.failures is None
        finally:
            exporter.stop()


def test_sighup_reloads_from_the_environment_and_sigterm_stops(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The signal loop as cli.main will run it: HUP re-reads flags + environment (+ config file)."""
    with running_sim() as a, running_sim() as b:
        monkeypatch.setenv("COMFYUI_EXPORTER_COMFYUI_URL", f"a={a.url}")
        monkeypatch.setenv(
            "COMFYUI_EXPORTER_REQUEST_TIMEOUT", "3"
        )  # registered, so the test's changes are undone
        config, args = parse_config(FAST)
        exporter = Exporter(config)
        exporter.start()
        reload = make_reloader(exporter, FAST, args)
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        result: dict[str, object] = {}

        def drive() -> None:
            try:
                wait_for(lambda: value(exporter, "comfyui_up", comfyui="a") == 1, 10, "a up")
                os.environ["COMFYUI_EXPORTER_COMFYUI_URL"] = f"a={a.url},b={b.url}"
                os.kill(os.getpid(), signal.SIGHUP)
                wait_for(lambda: value(exporter, "comfyui_up", comfyui="b") == 1, 10, "b added by SIGHUP")
                os.environ["COMFYUI_EXPORTER_COMFYUI_URL"] = f"a={a.url}"
                os.environ["COMFYUI_EXPORTER_REQUEST_TIMEOUT"] = (
                    "-1"  # invalid: the reload must change nothing
                )
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.3)
                result["watchers"] = [w.name for w in exporter.watchers]
                result["sent"] = time.monotonic()
            finally:
                os.kill(os.getpid(), signal.SIGTERM)

        thread = threading.Thread(target=drive, daemon=True)
        thread.start()
        try:
            rc = run_until_stopped(exporter, reload)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        thread.join(5)
        assert rc == 0
        assert result["watchers"] == ["a", "b"]
        assert time.monotonic() - float(result["sent"]) < 2.5  # type: ignore[arg-type]
        assert exporter.config.request_timeout == 3.0
        assert (
            "reload failed, keeping the running configuration: --request-timeout: must be positive"
            in caplog.text
        )
