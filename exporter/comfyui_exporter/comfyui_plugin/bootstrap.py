"""Installs the tap into the running ComfyUI, one feature-detected part at a time.

ComfyUI's modules are taken from ``sys.modules`` and never imported here: inside ComfyUI, main.py
has imported ``server``, ``execution`` and ``comfy_execution.progress`` before it loads custom
nodes, and outside ComfyUI importing a module called ``server`` could pick up anything.
Custom nodes are loaded after ``PromptServer`` is created and before its routes are added to the
app (main.py), which is why the route goes into ``PromptServer.instance.routes``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from . import tap as tap_module
from .hooks import QueueHooks, hook_submissions, hook_validation
from .progress_tap import hook_progress
from .routes import register_routes
from .tap import SERVER_ATTR, Tap

log = logging.getLogger("comfyui_exporter_plugin")


def install(modules: Mapping[str, Any] | None = None) -> Tap | None:
    """Hooks everything that can be hooked; returns the tap, or None when there is nothing to tap.

    Never raises: a part whose hook point is missing or throws is marked disabled in
    ``Tap.hooks`` (and logged), and the remaining parts are installed anyway.
    """
    mods = sys.modules if modules is None else modules
    if os.environ.get("COMFYUI_EXPORTER_PLUGIN_DISABLE", "").lower() in ("1", "true", "yes"):
        log.info("comfyui-exporter plugin: event tap disabled by COMFYUI_EXPORTER_PLUGIN_DISABLE")
        return None
    server_mod = mods.get("server")
    server_instance = getattr(getattr(server_mod, "PromptServer", None), "instance", None)
    if server_instance is None:
        log.warning(
            "comfyui-exporter plugin: no running PromptServer found; event tap not installed "
            "(the VRAM guard node still works)"
        )
        return None
    existing = getattr(server_instance, SERVER_ATTR, None)
    if existing is not None:  # another copy of this pack (its own Tap class) got here first
        log.warning("comfyui-exporter plugin: loaded twice (copy and link?); reusing the installed tap")
        tap_module.set_current(existing)
        return existing

    tap = Tap.from_env()
    setattr(server_instance, SERVER_ATTR, tap)
    tap_module.set_current(tap)
    execution = mods.get("execution")
    progress = mods.get("comfy_execution.progress")
    _guarded(tap, "route", lambda: _route(tap, getattr(server_instance, "routes", None)))
    _guarded(tap, "queue", lambda: _queue(tap, getattr(server_instance, "prompt_queue", None)))
    _guarded(tap, "validation", lambda: hook_validation(tap, execution))
    _guarded(tap, "submissions", lambda: hook_submissions(tap, server_instance, server_mod))
    _guarded(tap, "progress", lambda: hook_progress(tap, progress, execution))
    tap.features = detect_features(mods)
    if tap.token is None:
        log.info(
            "comfyui-exporter plugin: events route is open to whoever can reach ComfyUI "
            "(set COMFYUI_EXPORTER_PLUGIN_TOKEN to require a token)"
        )
    log.info(
        "comfyui-exporter plugin: event tap at /comfyui-exporter/v1/events, boot %s, hooks %s",
        tap.ring.boot_id,
        tap.hooks,
    )
    return tap


def detect_features(mods: Mapping[str, Any]) -> dict[str, bool]:
    """What this ComfyUI offers that matters to the tap, for /status (which line of ComfyUI this is).

    ``cache_provider_api`` (0.38's ``comfy_execution.cache_provider``) is detected but deliberately not
    used: its on_prompt_start/on_prompt_end would replace no hook (no outcome at the end), and
    registering any provider makes ComfyUI hash every node's cache key on each cache miss and store
    and changes nodes that test for providers (docs/plugin.md, "ComfyUI 0.38").
    """
    server_mod, cache = mods.get("server"), mods.get("comfy_execution.cache_provider")
    return {
        "jobs_api": callable(getattr(server_mod, "get_all_jobs", None)),
        "prompt_id_validation": callable(getattr(server_mod, "validate_job_id", None)),
        "cache_provider_api": callable(getattr(cache, "register_cache_provider", None)),
    }


def _route(tap: Tap, routes: Any) -> None:
    if not callable(getattr(routes, "get", None)):
        tap.mark("route", "disabled: PromptServer.instance.routes is not a RouteTableDef")
        return
    register_routes(tap, routes)
    tap.mark("route", "active")


def _queue(tap: Tap, queue: Any) -> None:
    if queue is None:
        tap.mark("queue", "disabled: PromptServer.instance.prompt_queue not found")
        return
    QueueHooks(tap, queue).install()


def _guarded(tap: Tap, part: str, step: Callable[[], Any]) -> None:
    """Runs one install step; an exception disables that part only."""
    try:
        step()
    except Exception as exc:
        tap.mark(part, f"disabled: {type(exc).__name__}: {exc}")
        tap.failed(f"installing {part}")
