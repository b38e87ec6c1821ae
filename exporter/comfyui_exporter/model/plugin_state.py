"""State fed only by the optional ComfyUI plugin: rejections, node timings, VRAM guard trips.

Kept apart from ``InstanceState`` so the sidecar-only state stays small; ``InstanceState.apply``
delegates plugin events here. Every label value alerts use is present at 0 from the moment the
plugin is first seen, and node types are capped like everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import NodeExecuted, PluginState, PromptRejected, VramGuardTripped
from .plugin_records import REJECT_REASONS, VRAM_GUARD_ACTIONS

NODE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass
class PluginView:
    seen: bool = False  # the plugin answered at least once: its series exist from then on
    connected: bool = False
    rejections: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    guard_trips: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VRAM_GUARD_ACTIONS, 0))
    node_seconds: dict[str, object] = field(default_factory=dict)  # node_type → Histogram

    def connection(self, event: PluginState) -> None:
        self.connected = event.connected
        self.seen = self.seen or event.connected

    def rejected(self, event: PromptRejected) -> str:
        reason = event.reason if event.reason in self.rejections else "other"
        self.rejections[reason] += 1
        return reason

    def tripped(self, event: VramGuardTripped) -> None:
        action = event.action if event.action in self.guard_trips else "warn"
        self.guard_trips[action] += 1

    def node_executed(self, event: NodeExecuted, node_type: str, histogram_factory) -> None:  # type: ignore[no-untyped-def]
        histogram = self.node_seconds.get(node_type)
        if histogram is None:
            histogram = self.node_seconds[node_type] = histogram_factory(NODE_BUCKETS)
        histogram.observe(event.seconds)  # type: ignore[attr-defined]
