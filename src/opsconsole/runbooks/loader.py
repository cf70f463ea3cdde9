"""Finding and loading runbooks: every problem is reported with file:line:col and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.errors import ExitCode, NotFoundError, SourceError, SourceLocation
from opsconsole.paths import shipped_dir
from opsconsole.runbooks.schema import Runbook
from opsconsole.yamlsource import Marks, format_field, load_yaml, validate

if TYPE_CHECKING:
    from opsconsole.config import Config

__all__ = [
    "RunbookInfo",
    "RunbookInvalid",
    "find_runbook",
    "find_sub_runbook",
    "list_runbooks",
    "load_runbook",
    "runbook_dirs",
]

INVALID_EXIT = 15
# Names the engine puts into every template context (see context.template_context).
RESERVED_NAMES = frozenset(
    {
        "params",
        "inventory",
        "vars",
        "regions",
        "steps",
        "run",
        "capabilities",
        "config_dir",
        "python",
        "opsconsole",
        "secret_file",
        "env",
    }
)


class RunbookInvalid(SourceError):
    """A runbook file is not valid (exit code 15)."""

    exit_code = INVALID_EXIT


def runbook_dirs(config: Config | None) -> list[Path]:
    """Configured runbook directories, then ``runbooks/`` beside the config, then shipped ones."""
    dirs: list[Path] = []
    if config is not None:
        for d in config.settings.runbook_dirs:
            resolved = config.resolve(d)
            if resolved is not None:
                dirs.append(resolved)
        dirs.append(config.directory / "runbooks")
        dirs.append(config.directory.parent / "runbooks")
    dirs.append(shipped_dir("runbooks"))
    seen: set[Path] = set()
    out = []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def find_runbook(name_or_path: str, config: Config | None) -> Path:
    """A path to a YAML file, or a runbook name looked up in :func:`runbook_dirs`."""
    as_path = Path(name_or_path).expanduser()
    if as_path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if as_path.is_file():
            return as_path
        raise NotFoundError(f"runbook file not found: {name_or_path}")
    for d in runbook_dirs(config):
        for suffix in (".yaml", ".yml"):
            candidate = d / f"{name_or_path}{suffix}"
            if candidate.is_file():
                return candidate
    searched = ", ".join(str(d) for d in runbook_dirs(config))
    raise NotFoundError(f"no runbook named {name_or_path!r} (searched {searched})")


def _cross_check(rb: Runbook, marks: Marks) -> None:
    problems: list[tuple[SourceLocation, str, str]] = []

    def add(path: tuple[str | int, ...], msg: str) -> None:
        problems.append((marks.locate(path), format_field(path), msg))

    seen: dict[str, str] = {}
    registers: set[str] = set()
    markers: set[str] = set()
    main_ids = {s.id for s in rb.steps}
    for phase in ("steps", "rollback"):
        for i, step in enumerate(getattr(rb, phase)):
            if step.id in seen:
                add((phase, i, "id"), f"duplicate step id {step.id!r} (also in {seen[step.id]})")
            seen[step.id] = f"{phase}[{i}]"
            if step.register_as is not None:
                if step.register_as in RESERVED_NAMES:
                    add((phase, i, "register"), f"{step.register_as!r} is a reserved template name")
                elif step.register_as in registers or step.register_as in rb.params:
                    add((phase, i, "register"), f"name {step.register_as!r} is already used")
                registers.add(step.register_as)
            if step.marker is not None:
                if step.marker in markers:
                    add((phase, i, "marker"), f"{step.marker} is set on more than one step")
                markers.add(step.marker)
            if step.undoes is not None:
                if phase == "steps":
                    add((phase, i, "undoes"), "undoes is only for rollback steps")
                elif step.undoes not in main_ids:
                    add((phase, i, "undoes"), f"no step with id {step.undoes!r} in steps")
            if phase == "rollback" and step.action in ("approval", "input"):
                add((phase, i, step.action), "rollback steps cannot wait for approval or input")
    for i, pre in enumerate(rb.preconditions):
        for j, name in enumerate(pre.not_in_effect):
            if name not in rb.params:
                add(("preconditions", i, "not_in_effect", j), f"no parameter named {name!r}")
    for name in rb.params:
        if name in RESERVED_NAMES:
            add(("params", name), f"{name!r} is a reserved template name; choose another")
    for name, param in rb.params.items():
        if param.default is not None and param.choices and param.default not in param.choices:
            add(("params", name, "default"), f"default {param.default!r} is not one of the choices")
    if problems:
        raise RunbookInvalid(problems)


# Step keys that are never rendered; every other string in a step is a template.
_PLAIN_STEP_KEYS = frozenset(
    {"id", "name", "register", "undoes", "marker", "drill", "on_failure", "idempotent", "check"}
)


def _check_templates(data: dict[str, Any], marks: Marks) -> None:
    """Template syntax errors, found when the file is loaded rather than mid-run."""
    from opsconsole.templating import syntax_error

    problems: list[tuple[SourceLocation, str, str]] = []

    def walk(value: Any, path: tuple[str | int, ...], expression: bool = False) -> None:
        if isinstance(value, str):
            msg = syntax_error(value, expression=expression)
            if msg:
                problems.append((marks.locate(path), format_field(path), msg))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*path, i))

    walk(data.get("lock"), ("lock",))
    for phase in ("steps", "rollback"):
        for i, step in enumerate(data.get(phase) or []):
            if not isinstance(step, dict):
                continue
            for key, value in step.items():
                if key not in _PLAIN_STEP_KEYS:
                    walk(value, (phase, i, key), expression=key == "when")
            shell = step.get("shell")
            command = shell.get("command") if isinstance(shell, dict) else shell
            base = (phase, i, "shell") + (("command",) if isinstance(shell, dict) else ())
            for path, msg in _shell_template_problems(command):
                problems.append((marks.locate((*base, *path)), format_field((*base, *path)), msg))
    if not problems:
        problems += _undefined_names(data, marks)
    if problems:
        raise RunbookInvalid(problems)


_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"})


def _quoted_template(command: str) -> bool:
    """A ``{{ ... }}`` inside single or double quotes of a shell string."""
    quote: str | None = None
    i = 0
    while i < len(command):
        c = command[i]
        if quote is None:
            if c == "\\":
                i += 2
                continue
            if c in "'\"":
                quote = c
        elif c == quote:
            quote = None
        elif quote == '"' and c == "\\":
            i += 2
            continue
        if quote is not None and command.startswith(("{{", "{%"), i):
            return True
        i += 1
    return False


def _shell_template_problems(command: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Templated values the engine cannot quote: inside quotes of a string command (the
    engine's quoting would be undone), or in the script of an argv ``sh -c``."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(command, str) and _quoted_template(command):
        out.append(
            (
                (),
                "a templated value inside quotes: the engine already shell-quotes every "
                "value; write {{ x }} without quotes around it",
            )
        )
    elif isinstance(command, list):
        for j, arg in enumerate(command[:-1]):
            prog = str(command[0]).rsplit("/", 1)[-1] if command else ""
            if (
                arg == "-c"
                and prog in _SHELLS
                and isinstance(command[j + 1], str)
                and ("{{" in command[j + 1] or "{%" in command[j + 1])
            ):
                out.append(
                    (
                        (j + 1,),
                        "a templated value inside an `sh -c` script is not quoted and would "
                        "run as code; pass it through env: (env: {X: '{{ x }}'}) and use "
                        '"$X" in the script, or use a string shell command',
                    )
                )
    return out


def _undefined_names(data: dict[str, Any], marks: Marks) -> list[tuple[SourceLocation, str, str]]:
    """Names a template uses that no run can define (``{{ steps.mk-file.stdout }}`` is
    ``steps.mk - file.stdout``: ``file`` is undefined), and unknown step ids."""
    from jinja2 import meta, nodes
    from jinja2.exceptions import TemplateError

    from opsconsole.templating import SANDBOX

    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    step_ids: set[str] = set()
    known = set(RESERVED_NAMES) | set(params or {}) | _JINJA_GLOBALS
    for phase in ("steps", "rollback"):
        for step in data.get(phase) or []:
            if isinstance(step, dict):
                if isinstance(step.get("id"), str):
                    step_ids.add(step["id"])
                if isinstance(step.get("register"), str):
                    known.add(step["register"])
    problems: list[tuple[SourceLocation, str, str]] = []

    def check(text: str, path: tuple[str | int, ...], expression: bool) -> None:
        if "{" not in text and not expression:
            return
        source = text
        if expression and not text.strip().startswith("{{"):
            source = "{{ " + text + " }}"
        try:
            ast = SANDBOX.parse(source)
        except TemplateError:
            return  # reported as a syntax error
        for name in sorted(meta.find_undeclared_variables(ast) - known):
            hint = ""
            if any("-" in sid for sid in step_ids):
                hint = " (a step id with '-' is written steps['my-step'])"
            problems.append(
                (marks.locate(path), format_field(path), f"undefined name {name!r}{hint}")
            )
        for node in ast.find_all(nodes.Getattr):
            if (
                isinstance(node.node, nodes.Name)
                and node.node.name == "steps"
                and node.attr not in step_ids
            ):
                problems.append(
                    (marks.locate(path), format_field(path), f"no step with id {node.attr!r}")
                )
        for node in ast.find_all(nodes.Getitem):
            if (
                isinstance(node.node, nodes.Name)
                and node.node.name == "steps"
                and isinstance(node.arg, nodes.Const)
                and isinstance(node.arg.value, str)
                and node.arg.value not in step_ids
            ):
                problems.append(
                    (marks.locate(path), format_field(path), f"no step with id {node.arg.value!r}")
                )

    def walk(value: Any, path: tuple[str | int, ...], expression: bool = False) -> None:
        if isinstance(value, str):
            check(value, path, expression)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*path, i))

    if isinstance(data.get("lock"), str):
        walk(data["lock"], ("lock",))
    for phase in ("steps", "rollback"):
        for i, step in enumerate(data.get(phase) or []):
            if not isinstance(step, dict):
                continue
            for key, value in step.items():
                if key not in _PLAIN_STEP_KEYS:
                    walk(
                        value, (phase, i, key), expression=key == "when" and isinstance(value, str)
                    )
    return problems


# Globals every Jinja environment has.
_JINJA_GLOBALS = frozenset(
    {
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
    }
)


def _known_fields() -> set[str]:
    from pydantic import BaseModel

    from opsconsole.runbooks import schema

    names: set[str] = set()
    for obj in vars(schema).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            for name, field in obj.model_fields.items():
                names.add(field.alias or name)
    return names


def _with_hints(
    problems: list[tuple[SourceLocation, str, str]],
) -> list[tuple[SourceLocation, str, str]]:
    """``unknown field`` -> ``unknown field (did you mean 'shell'?)`` for near misses."""
    import difflib

    known = _known_fields()
    out = []
    for loc, field, msg in problems:
        if msg == "unknown field" and field:
            leaf = field.rsplit(".", 1)[-1]
            close = difflib.get_close_matches(leaf, sorted(known), n=1, cutoff=0.75)
            if close:
                msg = f"unknown field (did you mean {close[0]!r}?)"
        out.append((loc, field, msg))
    return out


def load_runbook(
    path: Path, *, config: Config | None = None, check_subruns: bool = True
) -> Runbook:
    """Parse and validate one runbook file; raises :class:`RunbookInvalid` (file:line:col).

    Sub-runbooks named by literal names are followed (in ``config``'s search path) and a
    chain that calls itself is refused with the chain of names."""
    try:
        data, marks = load_yaml(path)
        if not isinstance(data, dict):
            raise SourceError(
                [(SourceLocation(str(path), 1, 1), "", "a runbook is a YAML mapping")]
            )
        rb = validate(Runbook, data, marks)
    except RunbookInvalid:
        raise
    except SourceError as exc:
        raise RunbookInvalid(_with_hints(exc.problems)) from None
    _cross_check(rb, marks)
    _check_templates(data, marks)
    rb._source = path
    if check_subruns and any(s.runbook is not None for s in [*rb.steps, *rb.rollback]):
        cycle = sub_runbook_cycle(rb, config)
        if cycle is not None:
            chain, at = cycle
            raise RunbookInvalid(
                [
                    (
                        marks.locate(at),
                        format_field(at),
                        "sub-runbook cycle: " + " -> ".join(chain) + " (a run would never end)",
                    )
                ]
            )
    return rb


def find_sub_runbook(name: str, parent: Runbook, config: Config | None) -> Path:
    """Where a ``runbook`` step's name points: beside its parent first, then the search
    path (:func:`find_runbook`)."""
    here = parent.source.parent if parent.source else None
    if here is not None and "/" not in name and not name.endswith((".yaml", ".yml")):
        for suffix in (".yaml", ".yml"):
            if (here / f"{name}{suffix}").is_file():
                return here / f"{name}{suffix}"
    return find_runbook(name, config)


def sub_runbook_cycle(
    rb: Runbook, config: Config | None, *, limit: int = 50
) -> tuple[list[str], tuple[str | int, ...]] | None:
    """A chain of runbook names that calls itself (``a -> b -> a``), with the path of the
    step in ``rb`` where it starts; None if there is none.

    Only literal names are followed (a templated name is resolved at run time, where the
    engine refuses a sub-run whose runbook is already in its chain of parents)."""
    cache: dict[Path, Runbook | None] = {}

    def find(name: str) -> Path:
        return find_sub_runbook(name, rb, config).resolve()

    def children(r: Runbook) -> list[tuple[str, tuple[str | int, ...]]]:
        out = []
        for phase in ("steps", "rollback"):
            for i, step in enumerate(getattr(r, phase)):
                if step.runbook is not None and "{" not in step.runbook.name:
                    out.append((step.runbook.name, (phase, i, "runbook", "name")))
        return out

    def load(name: str) -> Runbook | None:
        try:
            path = find(name)
        except NotFoundError:
            return None
        if path not in cache:
            cache[path] = None
            try:
                cache[path] = load_runbook(path, check_subruns=False)
            except SourceError:
                cache[path] = None
        return cache[path]

    start = rb.source.resolve() if rb.source else None
    own = rb.source.stem if rb.source else rb.name

    def walk(r: Runbook, chain: list[str], keys: list[Path | None]) -> list[str] | None:
        if len(chain) > limit:
            return chain
        for name, _ in children(r):
            try:
                target = find(name)
            except NotFoundError:
                continue
            if target in keys:
                return [*chain, name]
            child = load(name)
            if child is not None:
                found = walk(child, [*chain, name], [*keys, target])
                if found:
                    return found
        return None

    for name, path in children(rb):
        try:
            target = find(name)
        except NotFoundError:
            continue
        if target == start:
            return [own, name], path
        child = load(name)
        if child is not None:
            found = walk(child, [own, name], [start, target])
            if found:
                return found, path
    return None


@dataclass
class RunbookInfo:
    name: str
    path: Path
    description: str
    error: str | None = None


def list_runbooks(config: Config | None) -> list[RunbookInfo]:
    """Every runbook in the search path; an earlier directory shadows a later one."""
    out: dict[str, RunbookInfo] = {}
    for d in runbook_dirs(config):
        if not d.is_dir():
            continue
        for path in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
            if path.stem in out:
                continue
            try:
                rb = load_runbook(path, config=config)
                out[path.stem] = RunbookInfo(rb.name, path, rb.description.strip().split("\n")[0])
            except SourceError as exc:
                first = exc.problems[0] if exc.problems else None
                out[path.stem] = RunbookInfo(
                    path.stem, path, "", error=f"{first[0]}: {first[2]}" if first else "invalid"
                )
    return list(out.values())


assert ExitCode.CONFIG != INVALID_EXIT
