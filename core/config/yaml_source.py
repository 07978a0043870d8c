"""YAML reading that remembers where each key is, so a validation error can say `file:line`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError, ConfigProblem


class YamlDocument:
    """The parsed data, a map from dotted key path to its 1-based line number, and the
    problems found while reading (duplicate keys), reported with every other problem."""

    def __init__(
        self,
        path: Path,
        data: Any,
        lines: dict[str, int],
        problems: list[ConfigProblem] | None = None,
    ) -> None:
        self.path = path
        self.data = data
        self.lines = lines
        self.problems = problems or []

    def line_of(self, key: str) -> int | None:
        """The line of `key`, or of its nearest ancestor that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return None


def _walk(
    node: yaml.Node, prefix: str, lines: dict[str, int], problems: list[ConfigProblem], file: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            if key in seen:
                problems.append(
                    ConfigProblem(
                        file,
                        path,
                        "duplicate key: the later value would silently win; keep one",
                        key_node.start_mark.line + 1,
                    )
                )
            seen.add(key)
            lines[path] = key_node.start_mark.line + 1
            _walk(value_node, path, lines, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}.{index}"
            lines[path] = item.start_mark.line + 1
            _walk(item, path, lines, problems, file)


def read_yaml(path: Path) -> YamlDocument:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [
                ConfigProblem(
                    file, "", "file not found (set CRMHUB_CONFIG to the path of your crmhub.yaml)"
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(file, "", f"cannot read: {exc}")]) from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, "", f"not valid YAML: {problem}", line)]) from None
    lines: dict[str, int] = {}
    problems: list[ConfigProblem] = []
    if root is not None:
        _walk(root, "", lines, problems, file)
    return YamlDocument(path, data if data is not None else {}, lines, problems)
