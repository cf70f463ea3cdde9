"""Sandboxed Jinja2 rendering for runbooks (and anything else that templates user text).

Three rules keep templated values from becoming commands or leaking:

* every template renders in a :class:`~jinja2.sandbox.SandboxedEnvironment` with
  :class:`~jinja2.StrictUndefined` (a typo is an error, not an empty string);
* a ``shell`` command given as a string renders through an environment whose
  ``finalize`` hook shell-quotes *every* expression output, so a value such as
  ``x; rm -rf ~`` is one argument, never a command (write ``{{ x }}``, never ``'{{ x }}'``);
* values read from secret files or secret environment variables are registered with
  :data:`opsconsole.redact.secrets` the moment they are read.

For dry runs, :class:`Unknown` stands for a value only a real run would produce: it
renders as ``<unknown: steps.promote.json>`` and raises :class:`UnknownValue` when a
decision (``if``, a comparison used as a condition, a number conversion) depends on it.
"""

from __future__ import annotations

import contextvars
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from opsconsole.errors import OpsError
from opsconsole.redact import is_secret_key, secrets

__all__ = [
    "Namespace",
    "TemplateRenderError",
    "Unknown",
    "UnknownValue",
    "evaluate",
    "has_unknown",
    "render",
    "render_obj",
    "render_shell",
    "render_url",
    "secret_functions",
    "syntax_error",
]

UNKNOWN_PREFIX = "<unknown: "
_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)


class TemplateRenderError(OpsError):
    """A template could not be rendered (undefined name, syntax error, sandbox refusal)."""


class UnknownValue(Exception):
    """A decision depends on a value that only a real run produces (dry runs only)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class Unknown:
    """Placeholder for a value that only a real run would produce."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __getattr__(self, name: str) -> Unknown:
        if name.startswith("__"):
            raise AttributeError(name)
        return Unknown(f"{self.path}.{name}")

    def __getitem__(self, key: Any) -> Unknown:
        return Unknown(f"{self.path}.{key}" if isinstance(key, str) else f"{self.path}[{key!r}]")

    def __str__(self) -> str:
        return f"{UNKNOWN_PREFIX}{self.path}>"

    __repr__ = __str__

    def __bool__(self) -> bool:
        raise UnknownValue(self.path)

    def __iter__(self) -> Any:
        raise UnknownValue(self.path)

    def __len__(self) -> int:
        raise UnknownValue(self.path)

    def __int__(self) -> int:
        raise UnknownValue(self.path)

    def __float__(self) -> float:
        raise UnknownValue(self.path)

    def __hash__(self) -> int:
        return hash(self.path)

    def _op(self, *_: Any) -> Unknown:
        return self

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _op  # type: ignore[assignment]
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _op
    __truediv__ = __rtruediv__ = __floordiv__ = __mod__ = __neg__ = _op


class Namespace:
    """A mapping whose keys win over method names in templates.

    Jinja looks up ``steps.get`` as an attribute first, which on a dict is the ``get``
    method; step ids such as ``get``, ``update`` or ``items`` must reach the step.
    """

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Namespace({self._data!r})"


def has_unknown(value: Any) -> bool:
    """Whether a rendered value (string or structure) contains an unknown placeholder."""
    if isinstance(value, Unknown):
        return True
    if isinstance(value, str):
        return UNKNOWN_PREFIX in value
    if isinstance(value, Mapping):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_unknown(v) for v in value)
    return False


_secret_sink: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "opsconsole_secret_sink", default=None
)


def _shell_finalize(value: Any) -> str:
    if isinstance(value, Unknown):
        return str(value)
    if isinstance(value, list | tuple):
        return " ".join(_shell_finalize(v) for v in value)
    text = str(value)
    sink = _secret_sink.get()
    if sink is not None and secrets.contains(text):
        # A secret never becomes part of the command line (visible in ps and
        # /proc/*/cmdline): the shell reads it from its environment instead.
        name = f"OPSCONSOLE_SECRET_{len(sink) + 1}"
        sink[name] = text
        return f'"${name}"'
    return shlex.quote(text)


def render_shell(template: str, context: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """Render a shell command; secret values come back as environment variables that the
    command references (``"$OPSCONSOLE_SECRET_1"``), never inline."""
    sink: dict[str, str] = {}
    token = _secret_sink.set(sink)
    try:
        return render(template, context, shell=True), sink
    finally:
        _secret_sink.reset(token)


class RawURL(str):
    """A value the ``url_raw`` filter lets into a URL unencoded (a base URL, a path)."""

    __slots__ = ()


_URL_MARK = "\x00u"
_url_values: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "opsconsole_url_values", default=None
)


def _url_finalize(value: Any) -> str:
    values = _url_values.get()
    if values is None:
        return str(value)
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError here, inside render(), where it is reported
    values.append(value)
    return f"{_URL_MARK}{len(values) - 1}\x01"


def _make_env(shell: bool, url: bool = False) -> SandboxedEnvironment:
    finalize = _shell_finalize if shell else (_url_finalize if url else None)
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.filters["shell_quote"] = lambda v: v if shell else shlex.quote(str(v))
    env.filters["url_raw"] = lambda v: RawURL(str(v))
    env.filters["urlencode_all"] = lambda v: quote(str(v), safe="")
    return env


_ENV = _make_env(shell=False)
SANDBOX = _ENV  # for static checks of templates (names they use)
_SHELL_ENV = _make_env(shell=True)
_URL_ENV = _make_env(shell=False, url=True)
_MARK_RE = re.compile("\x00u(\\d+)\x01")


def render_url(template: str, context: Mapping[str, Any]) -> str:
    """Render a URL template, percent-encoding every value that lands in the path, the
    query or the fragment (``../../admin?x=1#`` stays one path segment). A value before
    the path (``{{ base_url }}/x``, the host) is inserted as is; so is one passed through
    the ``url_raw`` filter."""
    if "{" not in template:
        return template
    values: list[Any] = []
    token = _url_values.set(values)
    try:
        marked = _URL_ENV.from_string(template).render(dict(context))
    except UnknownValue:
        raise
    except TemplateError as exc:
        raise _fail(template, exc) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, OSError) as exc:
        raise _fail(template, exc) from None
    finally:
        _url_values.reset(token)
    out: list[str] = []
    pos = 0
    for m in _MARK_RE.finditer(marked):
        out.append(marked[pos : m.start()])
        pos = m.end()
        value = values[int(m[1])]
        text = str(value)
        so_far = "".join(out)
        scheme = so_far.find("://")
        in_path = (scheme >= 0 and any(c in so_far[scheme + 3 :] for c in "/?#")) or (
            scheme < 0 and so_far != "" and not so_far.endswith(("//", "@"))
        )
        raw = isinstance(value, RawURL | Unknown)
        if in_path and not raw:
            text = quote(text, safe="")
        elif scheme >= 0 and not in_path and not raw and any(c in text for c in "/?#@\\ \t\r\n"):
            raise TemplateRenderError(
                f"template {template!r}: {text!r} would change the URL's host part "
                "(values there cannot contain / ? # @ or spaces; use url_raw if intended)"
            )
        out.append(text)
    out.append(marked[pos:])
    return "".join(out)


def _fail(template: str, exc: Exception) -> TemplateRenderError:
    shown = template if len(template) <= 120 else template[:117] + "..."
    return TemplateRenderError(f"template {shown!r}: {exc}")


def render(template: str, context: Mapping[str, Any], *, shell: bool = False) -> str:
    """Render ``template``; with ``shell=True`` every expression output is shell-quoted."""
    if "{" not in template:
        return template
    env = _SHELL_ENV if shell else _ENV
    try:
        return env.from_string(template).render(dict(context))
    except UnknownValue:
        raise
    except TemplateError as exc:
        raise _fail(template, exc) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, OSError) as exc:
        raise _fail(template, exc) from None


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one expression (``region != 'x'`` or ``{{ region != 'x' }}``) to a value."""
    m = _SINGLE_EXPR.match(expression)
    expr = m["expr"] if m else expression
    try:
        value = _ENV.compile_expression(expr.strip(), undefined_to_none=False)(**dict(context))
    except UnknownValue:
        raise
    except TemplateError as exc:
        raise _fail(expression, exc) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, OSError) as exc:
        raise _fail(expression, exc) from None
    if isinstance(value, Undefined):
        try:
            str(value)  # raises the UndefinedError with its message
        except TemplateError as exc:
            raise _fail(expression, exc) from None
    return value


def syntax_error(text: str, *, expression: bool = False) -> str | None:
    """Why ``text`` cannot be a template (or, with ``expression``, an expression); None if it can.

    Lets a loader report a typo such as ``{{ region }`` when the file is checked, not when
    the step that holds it runs (after earlier steps have already changed things).
    """
    try:
        if expression or (_SINGLE_EXPR.match(text) and "{%" not in text):
            m = _SINGLE_EXPR.match(text)
            _ENV.compile_expression((m["expr"] if m else text).strip())
        elif "{" in text:
            _ENV.parse(text)
    except TemplateError as exc:
        return f"template syntax error: {getattr(exc, 'message', None) or exc}"
    return None


def render_obj(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON-like structure.

    A string that is exactly one ``{{ expression }}`` keeps the expression's native type
    (so ``"{{ count }}"`` stays an integer in a JSON body).
    """
    if isinstance(value, str):
        if "{" not in value:
            return value
        if _SINGLE_EXPR.match(value) and "{%" not in value:
            return evaluate(value, context)
        return render(value, context)
    if isinstance(value, Mapping):
        return {k: render_obj(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_obj(v, context) for v in value]
    return value


def secret_functions(secret_env: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Template globals that read secrets and register them for redaction on the way in.

    ``secret_file(path)`` reads a file (stripped); ``env(NAME, default)`` reads an
    environment variable, registering it when NAME is listed in the settings'
    ``secret_env`` or looks secret (TOKEN, PASSWORD, API_KEY...).
    """

    def secret_file(path: str) -> str:
        try:
            value = Path(str(path)).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
        secrets.add(value)
        return value

    def env(name: str, default: str | None = None) -> str:
        value = os.environ.get(str(name))
        if value is None:
            if default is None:
                raise ValueError(f"environment variable {name} is not set")
            return default
        if name in secret_env or is_secret_key(name):
            secrets.add(value)
        return value

    return {"secret_file": secret_file, "env": env}
