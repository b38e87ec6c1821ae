"""Fixtures for the simulator tests: one replay of each version's recordings, and fresh simulators."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from comfyui_exporter.sim.testing import SimHandle, running_sim

from .replay import CaseResult, Replayer


@contextmanager
def _replay(version: str) -> Iterator[dict[str, Any]]:
    """All of a version's recorded cases replayed in order against one simulator started as that
    version (like the recording server)."""
    with running_sim(comfyui_version=version) as sim:
        replayer = Replayer(sim.url, version)
        results: dict[str, CaseResult] = asyncio.run(replayer.run_all())
        id_map: dict[str, str] = {}
        for res in results.values():
            id_map.update(res.id_map)
        yield {"results": results, "id_map": id_map, "sim": sim, "version": version}


@pytest.fixture(scope="session")
def replayed() -> Iterator[dict[str, Any]]:
    """The ComfyUI 0.8.0 recordings replayed against ``--comfyui-version 0.8.0``."""
    with _replay("0.8.0") as result:
        yield result


@pytest.fixture(scope="session")
def replayed_0364() -> Iterator[dict[str, Any]]:
    """The ComfyUI 0.3.64 recordings replayed against ``--comfyui-version 0.3.64``."""
    with _replay("0.3.64") as result:
        yield result


REPLAY_FIXTURE = {"0.8.0": "replayed", "0.3.64": "replayed_0364"}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    """A fresh simulator shared by the tests of one module."""
    with running_sim() as handle:
        yield handle
