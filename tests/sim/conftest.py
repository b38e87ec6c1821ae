"""Fixtures for the simulator tests: one replay of all recordings, and fresh simulators."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from comfyui_exporter.sim.testing import SimHandle, running_sim

from .replay import CaseResult, Replayer


@pytest.fixture(scope="session")
def replayed() -> Iterator[dict[str, Any]]:
    """All recorded cases replayed in order against one simulator (like the recording server)."""
    with running_sim() as sim:
        replayer = Replayer(sim.url)
        results: dict[str, CaseResult] = asyncio.run(replayer.run_all())
        id_map: dict[str, str] = {}
        for res in results.values():
            id_map.update(res.id_map)
        yield {"results": results, "id_map": id_map, "sim": sim}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    """A fresh simulator shared by the tests of one module."""
    with running_sim() as handle:
        yield handle
