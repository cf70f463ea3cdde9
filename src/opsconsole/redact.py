"""Keep secrets out of output, stored step output and the audit log.

Two rules: values under keys that are secret by name (``password``, ``db_password``,
``token``, ``api_key``, ``Authorization``, ...; matched on whole words of the key, so
``passed``, ``bypass_cache`` or ``max_tokens`` are not secret keys) are replaced whole,
and any value registered as a secret is replaced wherever it appears inside a string,
also in the forms the engine itself produces from it: shell-quoted, URL-encoded
(path and form), base64 (standard and URL-safe) and JSON-escaped.

Registries are scoped: each run works in its own :class:`SecretRegistry` (a child of
the registry that was current when it started, see :func:`scoped`), so a value one run
learned never masks text in another run. :data:`secrets` always means "the registry
of the current run" (a context variable; outside any run, the process-wide root).

Values shorter than :data:`MIN_SECRET_LEN` (4) characters are never redacted: masking
every ``on`` or ``id`` would mangle ordinary text. A secret runbook parameter must be at
least that long (the engine refuses shorter ones).
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import itertools
import json
import re
import shlex
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "SecretRegistry",
    "current",
    "is_secret_key",
    "redact",
    "scoped",
    "secrets",
]

MASK = "***"
MIN_SECRET_LEN = 4
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pass",
        "pwd",
        "secret",
        "secrets",
        "token",
        "apikey",
        "credential",
        "credentials",
        "authorization",
        "cookie",
        "privatekey",
    }
)
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("auth", "key")})


def is_secret_key(key: str) -> bool:
    """Whether a key names a secret, judged on its whole words (snake, kebab, camel)."""
    words = [w.lower() for w in _WORDS.findall(key)]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def _forms(value: str) -> set[str]:
    """The value and the encodings of it the engine may produce."""
    raw = value.encode()
    forms = {
        value,
        shlex.quote(value),
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
    }
    forms |= {f.rstrip("=") for f in list(forms) if f.endswith("=")}
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


class SecretRegistry:
    """A set of secret values; a child registry also masks its parent's values."""

    def __init__(self, parent: SecretRegistry | None = None) -> None:
        self.parent = parent
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._lock = threading.Lock()
        self._version = 0
        self._cache: tuple[tuple[int, ...], re.Pattern[str] | None] | None = None

    def add(self, value: str | None) -> None:
        if not value or len(value) < MIN_SECRET_LEN:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._forms |= _forms(value)
                self._version += 1

    def update(self, values: Iterable[str]) -> None:
        for v in values:
            self.add(v)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._forms.clear()
            self._version += 1

    def values(self) -> set[str]:
        """Every registered value, this registry's and its ancestors'."""
        out = set(self._values)
        if self.parent is not None:
            out |= self.parent.values()
        return out

    def _chain(self) -> list[SecretRegistry]:
        chain: list[SecretRegistry] = []
        reg: SecretRegistry | None = self
        while reg is not None:
            chain.append(reg)
            reg = reg.parent
        return chain

    def _pattern(self) -> re.Pattern[str] | None:
        chain = self._chain()
        versions = tuple(r._version for r in chain)
        cached = self._cache
        if cached is not None and cached[0] == versions:
            return cached[1]
        forms: set[str] = set()
        for r in chain:
            forms |= r._forms
        # Longest first so a secret containing another is masked whole.
        alts = sorted(forms, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(v) for v in alts)) if alts else None
        self._cache = (versions, pattern)
        return pattern

    def scrub(self, text: str) -> str:
        pattern = self._pattern()
        return pattern.sub(MASK, text) if pattern is not None else text

    def contains(self, text: str) -> bool:
        pattern = self._pattern()
        return bool(pattern is not None and pattern.search(text))


_root = SecretRegistry()
_current: contextvars.ContextVar[SecretRegistry] = contextvars.ContextVar(
    "opsconsole_secrets", default=_root
)


def current() -> SecretRegistry:
    """The registry of the run this code runs for (the root outside any run)."""
    return _current.get()


@contextlib.contextmanager
def scoped(registry: SecretRegistry | None = None) -> Iterator[SecretRegistry]:
    """Work in ``registry`` (default: a new child of the current one) until exit."""
    reg = registry if registry is not None else SecretRegistry(parent=current())
    token = _current.set(reg)
    try:
        yield reg
    finally:
        _current.reset(token)


class _Current:
    """``secrets``: the current registry, whichever run is current."""

    def add(self, value: str | None) -> None:
        current().add(value)

    def update(self, values: Iterable[str]) -> None:
        current().update(values)

    def clear(self) -> None:
        current().clear()

    def scrub(self, text: str) -> str:
        return current().scrub(text)

    def contains(self, text: str) -> bool:
        return current().contains(text)

    def values(self) -> set[str]:
        return current().values()


secrets = _Current()


def redact(value: Any, registry: SecretRegistry | None = None) -> Any:
    """A copy of ``value`` (JSON-like) with secret keys and registered secrets masked."""
    reg = registry or current()
    if isinstance(value, str):
        return reg.scrub(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k) and v not in (None, "", False):
                out[k] = MASK
            else:
                out[k] = redact(v, reg)
        return out
    if isinstance(value, list | tuple):
        return [redact(v, reg) for v in value]
    return value
