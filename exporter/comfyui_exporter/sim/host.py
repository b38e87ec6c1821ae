"""What the HTTP handlers and the scenario driver may see and do to the simulator process.

The handlers (``server``, ``control``, ``middleware``) and the scenario driver need the current
``Instance``, the ledger that survives restarts and a way to ask for a restart, but the class that
owns the listener (``runtime.SimServer``) also builds their app. Typing them against this protocol
instead of that class keeps imports one way: wiring -> handlers -> this contract -> state.
"""

from __future__ import annotations

import random
from typing import Protocol

from .instance import Instance, SimOptions
from .ledger import Faults, Outcomes, Stats


class SimHost(Protocol):
    """The simulator process as its request handlers see it (``runtime.SimServer`` implements it)."""

    opts: SimOptions
    rng: random.Random
    outcomes: Outcomes
    stats: Stats
    faults: Faults  # replaced wholesale by ``DELETE /_sim/faults``
    instance: Instance | None  # None while the simulated process is down

    @property
    def up(self) -> bool:
        """False while a simulated restart is in progress, even once a new Instance exists."""
        ...

    def schedule_restart(self, down_seconds: float) -> None:
        """Restart after the current response has gone out, staying down ``down_seconds``."""
        ...

    async def drop_websockets(self) -> None:
        """Close every websocket of the current Instance, as a network blip would."""
        ...
