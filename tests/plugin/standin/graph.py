"""Stand-in for comfy_execution.graph (only what the progress registry and the plugin use)."""

from __future__ import annotations

from typing import Any


class NodeNotFoundError(Exception):
    pass


class DynamicPrompt:
    def __init__(self, original_prompt: dict[str, Any]) -> None:
        self.original_prompt = original_prompt

    def get_node(self, node_id: str) -> dict[str, Any]:
        if node_id not in self.original_prompt:
            raise NodeNotFoundError(f"Node {node_id} not found")
        return self.original_prompt[node_id]

    def get_display_node_id(self, node_id: str) -> str:
        return node_id

    def get_parent_node_id(self, node_id: str) -> None:
        return None

    def get_real_node_id(self, node_id: str) -> str:
        return node_id
