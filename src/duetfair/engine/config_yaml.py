"""Reading a config file safely: one YAML document through a ``yaml.SafeLoader`` that refuses a
key given twice, files over :data:`MAX_CONFIG_BYTES` and alias bombs (more than
:data:`MAX_CONFIG_NODES` values), with one-line errors naming the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from duetfair.errors import DuetfairError

__all__ = ["read_yaml", "count_nodes", "MAX_CONFIG_BYTES", "MAX_CONFIG_NODES"]

MAX_CONFIG_BYTES = 1 << 20
"""Largest config file read (1 MiB)."""
MAX_CONFIG_NODES = 100_000
"""Largest number of values a config may expand to (YAML aliases included): no alias bomb."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuetfairError(
                    f"line {key_node.start_mark.line + 1}: key '{str(key)[:80]}' is given twice; expected each key once"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def count_nodes(obj: Any, limit: int) -> int:
    """Number of values in ``obj`` with shared (aliased) parts counted each time, up to ``limit``."""
    count, stack = 0, [obj]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of the config file ``path`` (see the module docstring)."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise DuetfairError(f"config {path}: {size} bytes; a config is at most {MAX_CONFIG_BYTES} bytes")
        loader = _StrictLoader(path.read_text(encoding="utf-8"))
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except DuetfairError as exc:
        raise DuetfairError(f"config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise DuetfairError(f"config {path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DuetfairError(f"config {path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    except RecursionError:
        raise DuetfairError(f"config {path}: nested too deeply; expected a plain config") from None
    if data is None:
        raise DuetfairError(
            f"config {path} is empty; expected sections such as data, model, objective, train "
            f"(or 'extends: fundus2d.yaml')"
        )
    if not isinstance(data, dict):
        raise DuetfairError(f"config {path}: expected a mapping of sections at top level, got {type(data).__name__}")
    if count_nodes(data, MAX_CONFIG_NODES) > MAX_CONFIG_NODES:
        raise DuetfairError(
            f"config {path}: expands to more than {MAX_CONFIG_NODES} values (YAML aliases?); expected a plain config"
        )
    return data
