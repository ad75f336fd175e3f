"""YAML parsing that remembers where every key and value came from.

PyYAML's safe loader, with bounds on the work any input can cause: size, depth, aliases.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from scheduler.common.diagnostics import START, Position

# A .cron.yml is a few kilobytes and Firefox's .taskcluster.yml 61 KiB. The pure-Python parser
# reads about 150 KiB a second; refusing more keeps a bad push from tying up the scheduler.
# (libyaml would be faster, but it recurses in C and crashes the process on deep nesting.)
MAX_BYTES = 256 * 1024
# Nodes visited while walking the document, counting every expansion of an alias, so that a
# "billion laughs" document or a self-referencing alias is refused instead of expanded.
MAX_NODES = 250_000
MAX_INTEGER_BITS = 256
# Real files nest five or six levels; a self-referencing alias nests without end.
MAX_DEPTH = 64

JsonPath = tuple[Hashable, ...]
MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(Exception):
    """The text is not a YAML document this project can read."""

    def __init__(self, message: str, position: Position = START) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class DuplicateKey:
    path: JsonPath
    first: Position
    again: Position


@dataclass(frozen=True)
class Document:
    """Parsed YAML data, plus the position of every value and every mapping key in it."""

    data: Any
    values: Mapping[JsonPath, Position]
    keys: Mapping[JsonPath, Position]
    duplicate_keys: tuple[DuplicateKey, ...] = ()

    def position_of(self, path: JsonPath, *, key: bool = False) -> Position:
        """Where the value at `path` (or, with `key`, its key) is written.

        Values that came in through a merge key (`<<: *anchor`) are reported at the nearest
        enclosing value that has a position of its own.
        """
        if key and path in self.keys:
            return self.keys[path]
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, START)


def parse(source: str | bytes) -> Document:
    """Parse one YAML document; raise YamlError with a position for anything unreadable."""
    text = _decode(source)
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return Document(data=None, values={(): START}, keys={})
        values, keys, duplicates = _locate(node, loader)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        raise _marked_error(error) from None
    except yaml.reader.ReaderError as error:
        raise YamlError(
            f"invalid character {_describe_character(error.character)}; "
            "the file must be printable UTF-8 text",
            _position_at(text, error.position),
        ) from None
    except yaml.YAMLError as error:
        raise YamlError(f"invalid YAML: {error}") from None
    except RecursionError:
        raise YamlError("the document is nested too deeply to read; flatten it") from None
    finally:
        if loader is not None:
            loader.dispose()
    return Document(data=data, values=values, keys=keys, duplicate_keys=tuple(duplicates))


class _Loader(yaml.SafeLoader):
    """The safe loader, with value errors (like `day: 2024-02-30` dates) tied to a position."""

    def construct_yaml_int(self, node: ScalarNode) -> int:
        value: int = super().construct_yaml_int(node)
        # Hex, octal and binary literals skip Python's limit on digits, and the number
        # could then not even be printed in an error message.
        if value.bit_length() > MAX_INTEGER_BITS:
            raise yaml.constructor.ConstructorError(
                None, None, "this integer is too large to be a setting", node.start_mark
            )
        return value

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as error:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value ({error})", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _decode(source: str | bytes) -> str:
    size = len(source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source)
    if size > MAX_BYTES:
        raise YamlError(
            f"the file is larger than {MAX_BYTES} bytes, the most tc-scheduler reads; "
            "remove what the scheduler does not need"
        )
    if isinstance(source, str):
        return source
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as error:
        before = source[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        raise YamlError(
            f"byte 0x{source[error.start]:02x} is not valid UTF-8; save the file as UTF-8 text",
            Position(line, column),
        ) from None


def _locate(
    root: Node, loader: _Loader
) -> tuple[dict[JsonPath, Position], dict[JsonPath, Position], list[DuplicateKey]]:
    values: dict[JsonPath, Position] = {}
    keys: dict[JsonPath, Position] = {}
    duplicates: list[DuplicateKey] = []
    stack: list[tuple[Node, JsonPath]] = [(root, ())]
    visited = 0
    while stack:
        node, path = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            raise YamlError(
                f"the document expands to more than {MAX_NODES} values "
                "(through aliases, or an alias that refers to itself)",
                _mark_position(node.start_mark),
            )
        if len(path) > MAX_DEPTH:
            raise YamlError(
                f"the document nests more than {MAX_DEPTH} levels deep "
                "(or has an alias that refers to itself)",
                _mark_position(node.start_mark),
            )
        values.setdefault(path, _mark_position(node.start_mark))
        if isinstance(node, SequenceNode):
            stack.extend((child, (*path, index)) for index, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            seen: dict[Hashable, Position] = {}
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG or not isinstance(key_node, ScalarNode):
                    # Merged entries keep the position of the mapping that merges them;
                    # non-scalar keys are refused when the document is constructed.
                    continue
                key = loader.construct_object(key_node)
                key_position = _mark_position(key_node.start_mark)
                if not isinstance(key, Hashable):
                    continue
                if key in seen:
                    duplicates.append(DuplicateKey((*path, key), seen[key], key_position))
                seen[key] = key_position
                keys[(*path, key)] = key_position
                stack.append((value_node, (*path, key)))
    return values, keys, duplicates


def non_json_values(value: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Any]]:
    """Values YAML can express but JSON cannot (dates, binary, NaN, non-string keys)."""
    if _is_json(value):  # the common case, without building a path for every value
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield from non_json_values(item, (*path, key))
            else:
                yield path, key
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from non_json_values(item, (*path, index))
    elif not _is_json_scalar(value):
        yield path, value


def _is_json(value: Any) -> bool:
    """Whether JSON can carry `value` whole (what `non_json_values` finds nothing in)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif not _is_json_scalar(item):
            return False
    return True


def _is_json_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


def _marked_error(error: yaml.MarkedYAMLError) -> YamlError:
    mark = error.problem_mark or error.context_mark
    problem = error.problem or error.context or "unreadable YAML"
    if "found character '\\t'" in problem:
        problem += " (YAML indentation must use spaces, not tabs)"
    context = f" {error.context}" if error.context and error.problem else ""
    return YamlError(
        f"invalid YAML:{context} {problem}".replace("  ", " "),
        _mark_position(mark) if mark else START,
    )


def _mark_position(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _position_at(text: str, offset: int) -> Position:
    before = text[:offset]
    return Position(before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


def _describe_character(character: str | int) -> str:
    code = character if isinstance(character, int) else ord(character)
    return f"U+{code:04X}"
