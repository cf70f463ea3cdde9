"""Load YAML while remembering where every value came from, within bounds.

pydantic reports an error at a ``loc`` such as ``('regions', 'sa-east-1', 'services',
'payments', 'endpoints', 0, 'url')``. We keep a map from such paths to the line and
column of the YAML node, so every validation error can name ``file:line:col``.

Every YAML file of the project (config, runbooks, playbooks, drills) goes through
:func:`load_yaml`, which refuses - with ``file:line`` - what would exhaust memory or the
stack before anything is built: a file over :data:`MAX_BYTES`, nesting deeper than
:data:`MAX_DEPTH`, more than :data:`MAX_NODES` nodes *after* alias expansion (a
"billion laughs" alias bomb is refused while it is still a few hundred bytes), and an
alias that refers to itself. Invalid UTF-8 and impossible dates are located too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from opsconsole.errors import SourceError, SourceLocation

__all__ = ["Marks", "load_model", "load_yaml", "read_source_text", "validate"]

M = TypeVar("M", bound=BaseModel)
PathKey = tuple[str | int, ...]


class Marks:
    """Line/column of every mapping key and value in one YAML document."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[PathKey, tuple[int, int]] = {}
        self.keys: dict[PathKey, tuple[int, int]] = {}

    def locate(self, loc: Iterable[str | int], *, key: bool = False) -> SourceLocation:
        """The location of the deepest known node on ``loc``."""
        parts = tuple(loc)
        for n in range(len(parts), -1, -1):
            prefix = parts[:n]
            table = self.keys if key and n == len(parts) else self.values
            if prefix in table:
                line, col = table[prefix]
                return SourceLocation(self.file, line, col)
            if prefix in self.keys:
                line, col = self.keys[prefix]
                return SourceLocation(self.file, line, col)
        return SourceLocation(self.file, 1, 1)


def _walk(node: yaml.Node, path: PathKey, marks: Marks) -> None:
    marks.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            marks.keys[(*path, key)] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            _walk(value_node, (*path, key), marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), marks)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a mapping key must be a plain value (not a list or mapping)",
                key_node.start_mark,
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 50_000


def _construct_checked(method: Any) -> Any:
    """A scalar constructor whose ValueError (``2026-13-45``, a 5,000-digit integer)
    becomes a located YAML error."""

    def construct(loader: _UniqueKeyLoader, node: yaml.Node) -> Any:
        try:
            return method(loader, node)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid value {node.value!r}: {exc}", node.start_mark
            ) from None

    return construct


for _tag, _method in (
    ("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_timestamp),
    ("tag:yaml.org,2002:int", yaml.SafeLoader.construct_yaml_int),
    ("tag:yaml.org,2002:float", yaml.SafeLoader.construct_yaml_float),
):
    _UniqueKeyLoader.add_constructor(_tag, _construct_checked(_method))


def _bounds(text: str, name: str) -> None:
    """Walk the event stream (iterative, cheap) and refuse what would blow up later."""

    def refuse(mark: Any, msg: str) -> SourceError:
        loc = SourceLocation(name, mark.line + 1, mark.column + 1) if mark else SourceLocation(name)
        return SourceError([(loc, "", msg)])

    sizes: dict[str, int] = {}  # anchor -> expanded node count
    stack: list[list[Any]] = []  # open collections: [count, anchor]
    total = 0
    for event in yaml.parse(text, Loader=_UniqueKeyLoader):
        if isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor)
            if size is None:
                raise refuse(
                    event.start_mark,
                    f"alias *{event.anchor} refers to a node that contains it (or is undefined)",
                )
            added = size
        elif isinstance(event, yaml.ScalarEvent):
            added = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append([1, event.anchor])
            if len(stack) > MAX_DEPTH:
                raise refuse(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            count, anchor = stack.pop()
            if anchor:
                sizes[anchor] = count
            added = count
            if stack:
                stack[-1][0] += added
            continue
        else:
            continue
        total += added
        if stack:
            stack[-1][0] += added
        if total + sum(c for c, _ in stack) > MAX_NODES:
            raise refuse(
                event.start_mark,
                f"more than {MAX_NODES} values (after expanding aliases); refused",
            )


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SourceError(
            [
                (
                    SourceLocation(name, line, col),
                    "",
                    f"not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                )
            ]
        ) from None


def read_source_text(path: Path) -> str:
    """A user-written file's text, within bounds; a missing, unreadable, oversized or
    non-UTF-8 file is a :class:`SourceError` naming it (and line:col of a bad byte)."""
    name = str(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SourceError([(SourceLocation(name), "", "file not found")]) from None
    except OSError as exc:
        raise SourceError(
            [(SourceLocation(name), "", f"cannot read: {exc.strerror or exc}")]
        ) from None
    if len(raw) > MAX_BYTES:
        raise SourceError(
            [(SourceLocation(name), "", f"larger than {MAX_BYTES // 1024} KiB; refused")]
        )
    return _decode(raw, name)


def load_yaml(path: Path, text: str | None = None) -> tuple[Any, Marks]:
    """Parse one YAML document within bounds; every problem becomes a :class:`SourceError`
    with its position."""
    name = str(path)
    if text is None:
        text = read_source_text(path)
    elif len(text) > MAX_BYTES:
        raise SourceError([(SourceLocation(name), "", f"larger than {MAX_BYTES // 1024} KiB")])
    marks = Marks(name)
    try:
        _bounds(text, name)
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = SourceLocation(name, mark.line + 1, mark.column + 1) if mark else SourceLocation(name)
        problem = exc.problem or str(exc)
        raise SourceError([(loc, "", f"invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise SourceError([(SourceLocation(name), "", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise SourceError([(SourceLocation(name), "", "invalid YAML: nested too deeply")]) from None
    if node is not None:
        _walk(node, (), marks)
    return data, marks


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union/tag entries from ``loc``, keeping only real data keys."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        in_dict = isinstance(cur, dict) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_dict or in_list:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and part not in cur:
            # Either a union tag (skip it) or a missing/extra key (keep it as the leaf).
            # Tags are type names: `str`, `int`, ... or a model's CamelCase class name;
            # the keys of these YAML files are lower-case.
            if (
                part.startswith(("function-", "tagged-union", "union["))
                or "[" in part
                or part in _TYPE_TAGS
                or part[:1].isupper()
            ):
                continue
            out.append(part)
            cur = None
        else:
            continue
    return tuple(out)


def format_field(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = str(err.get("msg", "invalid"))
    if kind == "path_type":
        msg = "should be a file path"
    if kind in ("model_type", "dataclass_type", "dict_type"):
        # pydantic names the Python class ("... or instance of RulesFile"): say what the
        # YAML needs instead.
        msg = "expected a mapping (key: value lines)"
    inp = err.get("input")
    if (
        kind not in ("missing",)
        and isinstance(inp, str | int | float)
        and not isinstance(inp, bool)
    ):
        shown = repr(inp) if len(repr(inp)) <= 60 else repr(inp)[:57] + "...'"
        if shown not in msg:
            msg = f"{msg} (got {shown})"
    return msg.removeprefix("Value error, ")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})


def _other_branches_went_deeper(
    errors: list[tuple[tuple[str | int, ...], dict[str, Any]]],
) -> list[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Drop a union branch's "wrong type" error when another branch matched the value's
    shape and reports something deeper inside it (`allow: [{... environments: [prod]}]`
    is a Grant with a bad environment, not "should be a valid string" as well)."""

    def deeper(path: tuple[str | int, ...]) -> bool:
        return any(len(p) > len(path) and p[: len(path)] == path for p, _ in errors)

    return [
        (path, err)
        for path, err in errors
        if not (str(err.get("type", "")).endswith("_type") and deeper(path))
    ]


def errors_from_validation(
    exc: ValidationError, data: Any, marks: Marks, prefix: tuple[str | int, ...] = ()
) -> list[tuple[SourceLocation, str, str]]:
    problems: list[tuple[SourceLocation, str, str]] = []
    paths = [(prefix + _data_path(data, tuple(err["loc"])), err) for err in exc.errors()]
    for path, err in _other_branches_went_deeper(paths):
        is_key = err.get("type") in ("extra_forbidden",)
        loc = marks.locate(path, key=is_key)
        problems.append((loc, format_field(path), _message(err)))
    # Stable order: by line, so the first problem in the file comes first.
    problems.sort(key=lambda p: (p[0].line or 0, p[0].column or 0))
    return problems


def validate(
    model: type[M], data: Any, marks: Marks, *, context: dict[str, Any] | None = None
) -> M:
    """Validate ``data`` against ``model``; raise :class:`SourceError` naming file:line:col."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise SourceError(errors_from_validation(exc, data, marks)) from None


def load_model(model: type[M], path: Path, *, context: dict[str, Any] | None = None) -> M:
    data, marks = load_yaml(path)
    if data is None:
        data = {}
    return validate(model, data, marks, context=context)
