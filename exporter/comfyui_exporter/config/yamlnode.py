"""Strict YAML reading that keeps line numbers, for the web config and the exporter config file.

``yaml.safe_load`` forgets where a value came from and silently accepts unknown or duplicate keys,
so a typo (``cert_filse``) would turn TLS off without a word. Both files are read here as node
trees (``yaml.compose``): every value knows its dotted key and line, a mapping read through
:meth:`Node.fields` rejects keys it does not know, and every error names the file, line and key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .settings import ConfigError

_NULL = "tag:yaml.org,2002:null"


class Node:
    """One YAML node with its dotted key path, for typed reads that name the key and line on error."""

    def __init__(self, node: yaml.Node | None, key: str, source: str, line: int = 1) -> None:
        self.node = node
        self.key = key
        self.source = source
        self.line = node.start_mark.line + 1 if node is not None else line

    # -- errors -----------------------------------------------------------------------------------
    def error(self, problem: str) -> ConfigError:
        """A ConfigError naming file, line and key, e.g. ``web.yml:3: tls_server_config.cert: …``."""
        where = f"{self.source}:{self.line}"
        return ConfigError(f"{where}: {self.key}: {problem}" if self.key else f"{where}: {problem}")

    # -- shape ----------------------------------------------------------------------------------------
    @property
    def is_null(self) -> bool:
        return self.node is None or (isinstance(self.node, yaml.ScalarNode) and self.node.tag == _NULL)

    def _child_key(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def fields(self, known: tuple[str, ...] | set[str] | frozenset[str]) -> dict[str, Node]:
        """A mapping whose keys must all be in ``known``; unknown and repeated keys are errors."""
        out: dict[str, Node] = {}
        for name, child in self.items():
            if name not in known:
                hint = difflib.get_close_matches(name, list(known), n=1)
                raise child.error("unknown key" + (f" (did you mean {hint[0]}?)" if hint else ""))
            out[name] = child
        return out

    def items(self) -> Iterator[tuple[str, Node]]:
        """The (key, value) pairs of a mapping (null counts as empty); a repeated key is an error."""
        if self.is_null:
            return
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"expected a mapping, got {self._kind()}")
        seen: set[str] = set()
        for key_node, value_node in self.node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise Node(key_node, self.key, self.source).error("keys must be plain strings")
            name = key_node.value
            child = Node(value_node, self._child_key(name), self.source)
            child.line = key_node.start_mark.line + 1  # the key's line is the one a person looks for
            if name in seen:
                raise child.error("key given twice")
            seen.add(name)
            yield name, child

    def as_list(self) -> list[Node]:
        """The items of a sequence (null counts as empty), keyed ``key[i]``."""
        if self.is_null:
            return []
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"expected a list, got {self._kind()}")
        return [Node(item, f"{self.key}[{i}]", self.source) for i, item in enumerate(self.node.value)]

    # -- scalars --------------------------------------------------------------------------------------
    def _kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        return f"{self._value()!r}"

    def _value(self) -> Any:
        if self.is_null:
            return None
        return yaml.SafeLoader("").construct_object(self.node, deep=True)

    def as_str(self, allow_empty: bool = True) -> str:
        """The scalar's text exactly as written: ``1`` stays "1" and a bcrypt hash is never a number."""
        if not isinstance(self.node, yaml.ScalarNode) or self.is_null:
            raise self.error(f"expected a string, got {self._kind() if self.node is not None else 'nothing'}")
        if not allow_empty and not self.node.value.strip():
            raise self.error("must not be empty")
        return str(self.node.value)

    def as_bool(self) -> bool:
        value = self._value() if isinstance(self.node, yaml.ScalarNode) else None
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {self._kind()}")
        return value

    def as_int(self, minimum: int | None = None) -> int:
        value = self._value() if isinstance(self.node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected an integer, got {self._kind()}")
        if minimum is not None and value < minimum:
            raise self.error(f"must be at least {minimum}, got {value}")
        return value

    def number(self, positive: bool = False, non_negative: bool = False) -> float:
        value = self._value() if isinstance(self.node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"expected a number, got {self._kind()}")
        if positive and value <= 0:
            raise self.error(f"must be positive, got {value}")
        if non_negative and value < 0:
            raise self.error(f"must not be negative, got {value}")
        return float(value)

    def choice(self, choices: tuple[str, ...]) -> str:
        value = self.as_str()
        if value not in choices:
            raise self.error(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def path(self, base: Path) -> str:
        """A file path; relative paths are relative to the directory of the file that names them."""
        value = Path(self.as_str(allow_empty=False))
        return str(value if value.is_absolute() else base / value)


def load(text: str, source: str) -> Node:
    """Parse one YAML document into a :class:`Node`; syntax errors name the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return Node(node, "", source)


def load_file(path: str | Path) -> tuple[Node, bytes]:
    """Read and parse a file; returns the root node and the raw bytes (for change detection)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return load(text, str(path)), raw
