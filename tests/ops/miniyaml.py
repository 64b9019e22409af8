"""A strict reader for the small subset of YAML that ops/ files are written in.

PyYAML is not a dependency of the project, so the tests read ops/*.yml with
this: block mappings and sequences by indentation, ``- key: value`` items,
double- or single-quoted strings, flow lists of quoted strings, booleans,
integers and plain words. Anything else (anchors, block scalars, inline
comments, tabs) raises ``ValueError`` instead of being read wrongly, so a file
that drifts out of the subset fails its test rather than passing unread.
"""

from __future__ import annotations

import json
import re
from typing import Any

_KEY = re.compile(r'^("(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|[A-Za-z0-9_.\-/]+):(?: (.*))?$')
_PLAIN = re.compile(r"^[A-Za-z0-9_.\-/]+$")
_INT = re.compile(r"^-?[0-9]+$")


def loads(text: str) -> Any:
    lines: list[tuple[int, str, int]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw:
            raise ValueError(f"line {number}: tab")
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped in ("---", "..."):
            raise ValueError(f"line {number}: documents are not in the subset")
        lines.append((len(raw) - len(raw.lstrip(" ")), stripped, number))
    if not lines:
        return None
    value, end = _block(lines, 0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"line {lines[end][2]}: unexpected indentation")
    return value


def _block(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1] == "-" or lines[i][1].startswith("- "):
        return _sequence(lines, i, indent)
    return _mapping(lines, i, indent)


def _mapping(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    result: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        _, content, number = lines[i]
        match = _KEY.match(content)
        if match is None:
            raise ValueError(f"line {number}: not a 'key: value' line: {content!r}")
        key = _scalar(match.group(1), number)
        if not isinstance(key, str) or key in result:
            raise ValueError(f"line {number}: bad or duplicate key {key!r}")
        rest = match.group(2)
        i += 1
        if rest:
            result[key] = _scalar(rest, number)
        elif i < len(lines) and lines[i][0] > indent:
            result[key], i = _block(lines, i, lines[i][0])
        else:
            result[key] = None
    return result, i


def _sequence(lines: list[tuple[int, str, int]], i: int, indent: int) -> tuple[Any, int]:
    result: list[Any] = []
    while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("-"):
        _, content, number = lines[i]
        rest = content[1:].strip()
        if not rest:
            i += 1
            if i >= len(lines) or lines[i][0] <= indent:
                raise ValueError(f"line {number}: empty item")
            item, i = _block(lines, i, lines[i][0])
        elif _KEY.match(rest):
            # "- key: value": a mapping whose first key shares the dash's line.
            lines = [*lines[:i], (indent + 2, rest, number), *lines[i + 1 :]]
            item, i = _mapping(lines, i, indent + 2)
        else:
            item = _scalar(rest, number)
            i += 1
        result.append(item)
    return result, i


def _scalar(text: str, number: int) -> Any:
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"line {number}: bad double-quoted string {text!r}") from exc
        if not isinstance(value, str):
            raise ValueError(f"line {number}: {text!r}")
        return value
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'") or "'" in text[1:-1].replace("''", ""):
            raise ValueError(f"line {number}: bad single-quoted string {text!r}")
        return text[1:-1].replace("''", "'")
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"line {number}: only flow lists of quoted strings") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"line {number}: only flow lists of quoted strings")
        return value
    if text in ("true", "false"):
        return text == "true"
    if _INT.match(text):
        return int(text)
    if _PLAIN.match(text):
        return text
    raise ValueError(f"line {number}: not in the YAML subset: {text!r} (quote it)")
