"""Reading a layers.yaml's text into mappings and lists that remember their lines, within limits.

The safe loader adds line numbers, merge keys (`<<: *anchor`), `!tuple` and `!layer`, and bounds
how deep and how large a file may nest or expand, so a hostile file is a one-line error.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from gradcheck.errors import ConfigError
from gradcheck.limits import shown


class LineDict(dict):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    end_line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A YAML sequence that remembers the line of itself and of each item."""

    line: int = 0
    item_lines: list[int]


# Bounds on what a layers.yaml may expand to: a real one is a few hundred nodes a few levels deep.
MAX_NESTING = 50  # levels of brackets or indentation, as written
MAX_NODES = 100_000  # nodes once every alias is expanded (a "billion laughs" file expands to 10**9)
MAX_EXPANDED_DEPTH = 200  # levels once every alias is expanded
MAX_DIGITS = 100  # of an integer: Python refuses to read one of over 4300 at all


class _Loader(yaml.SafeLoader):
    """SafeLoader that records line numbers, rejects duplicate keys and bounds nesting and aliases.

    The composer builds each node once, children first, so the size and depth each node would have
    with its aliases expanded are counted as it goes, without ever expanding anything.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []
        self.nesting = 0
        self.measures: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)

    def compose_node(self, parent, index):
        if self.nesting >= MAX_NESTING:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_NESTING} levels", self.peek_event().start_mark
            )
        self.nesting += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.nesting -= 1
        self.measure(node)
        return node

    def measure(self, node: yaml.Node) -> None:
        if id(node) in self.measures:
            return
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        if any(id(child) not in self.measures for child in children):
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to the node that contains it (a cycle)", node.start_mark
            )
        sizes = [self.measures[id(child)] for child in children]
        size = 1 + sum(n for n, _ in sizes)
        depth = 1 + max((d for _, d in sizes), default=0)
        if size > MAX_NODES or depth > MAX_EXPANDED_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"over {MAX_NODES} values or {MAX_EXPANDED_DEPTH} levels once aliases are expanded "
                "(an alias repeats too much)",
                node.start_mark,
            )
        self.measures[id(node)] = (size, depth)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)
    merged = len(node.value) - explicit  # `<<: *base` pairs come first; the mapping's own keys override them
    mapping, own = LineDict(), set()
    mapping.line, mapping.end_line = node.start_mark.line + 1, node.end_mark.line + 1
    for position, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            loader.duplicates.append((line, f"a key must be a plain value such as a name, got {shown(key)}"))
            continue
        if key in own:
            loader.duplicates.append((line, f"duplicate key {shown(key)} (first on line {mapping.key_lines[key]})"))
        if position >= merged:
            own.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    items = LineList(loader.construct_object(child, deep=True) for child in node.value)
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    return items


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    if len(node.value) > MAX_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {len(node.value)} digits (at most {MAX_DIGITS})", node.start_mark
        )
    return loader.construct_yaml_int(node)


def construct_tuple(loader, node) -> tuple:
    """`!tuple [C, H, W]` in layers.yaml: a Python tuple, for code that adds shapes (`(N,) + shape`)."""
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!tuple must tag a list, e.g. !tuple [2, 2]", node.start_mark
        )
    return tuple(loader.construct_object(child, deep=True) for child in node.value)


class LayerNode:
    """A `!layer {impl: ..., init: ...}` mapping as read from YAML, before the registry checks it."""

    def __init__(self, raw):
        self.raw = raw

    def __repr__(self) -> str:  # as a message shows one written where no layer object belongs
        return f"!layer {dict(self.raw)!r}"


def construct_layer(loader, node) -> LayerNode:
    """`!layer {impl: file.py:Class, init: {...}}` in layers.yaml: another layer object as an argument."""
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            "!layer must tag a mapping, e.g. !layer {impl: layers.py:Dense, init: {n_out: 4}}",
            node.start_mark,
        )
    plain = yaml.MappingNode(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, node.value, node.start_mark, node.end_mark, node.flow_style
    )
    return LayerNode(loader.construct_object(plain, deep=True))


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("!tuple", construct_tuple)  # pool_shape: !tuple [2, 2]
_Loader.add_constructor("!layer", construct_layer)  # wrapped_layer: !layer {impl: ...}


def load_yaml(path: Path) -> tuple[Any, list[tuple[int, str]]]:
    """The document of a layers.yaml and its duplicate-key problems, or ConfigError naming the line."""
    if not path.is_file():
        raise ConfigError([f"{path}: no such file (pass --config PATH to name a layers.yaml)"])
    return _parse_yaml(path, _read_text(path))


def _read_text(path: Path) -> str:
    """The file as text: UTF-8, without control characters other than tab and line breaks."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as UTF-8"
        raise ConfigError([problem]) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    for line_number, written in enumerate(text.split("\n"), start=1):
        bad = next((c for c in written if is_control(c) and c not in "\t\r"), None)
        if bad is not None:
            raise ConfigError(
                [
                    f"{path}:{line_number}: control character U+{ord(bad):04X} is not allowed "
                    "(only tab and line breaks are)"
                ]
            )
    deep = _deep_line(text)
    if deep is not None:
        raise ConfigError([f"{path}:{deep}: invalid YAML: nested deeper than {MAX_NESTING} levels"])
    return text


def _deep_line(text: str) -> int | None:
    """The first line where brackets outside quotes nest deeper than MAX_NESTING, or None.

    Checked before parsing because PyYAML's scanner slows down quadratically on deep flow nesting
    (5000 brackets take seconds before the composer ever sees a node).
    """
    depth, quote, line, previous = 0, "", 1, " "
    for char in text:
        if char == "\n":
            line += 1
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and previous in " \t\n[{,:":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return line
        elif char in "]}":
            depth = max(depth - 1, 0)
        previous = char
    return None


def is_control(char: str) -> bool:
    """Control, surrogate and private characters, which no name or value in a layers.yaml needs."""
    return unicodedata.category(char) in ("Cc", "Cs", "Co")


def _parse_yaml(path: Path, text: str) -> tuple[Any, list[tuple[int, str]]]:
    """The YAML document and its duplicate-key problems, or ConfigError with the line at fault."""
    loader = _Loader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError([f"{path}:{line}: invalid YAML: {exc.problem or exc.context}"]) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # e.g. an integer of over 4300 digits
        raise ConfigError([f"{path}: invalid YAML: {shown(str(exc))}"]) from None
    finally:
        loader.dispose()
