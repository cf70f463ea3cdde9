"""Keep secrets out of output, stored step output and the audit log.

Two rules: values under keys that look secret (password, token, secret, api_key, ...)
are replaced whole, and any value registered as a secret is replaced wherever it
appears inside a string.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "SecretRegistry", "is_secret_key", "redact", "secrets"]

MASK = "***"
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|credential|authorization|cookie",
    re.IGNORECASE,
)
# Too short to redact without mangling ordinary text ("a", "on"): refuse silently.
_MIN_SECRET_LEN = 4


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


class SecretRegistry:
    """Process-wide set of secret values (params marked secret, env secrets, key files)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | None) -> None:
        if not value or len(value) < _MIN_SECRET_LEN:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._pattern = None

    def update(self, values: Iterable[str]) -> None:
        for v in values:
            self.add(v)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None

    def scrub(self, text: str) -> str:
        if not self._values:
            return text
        pattern = self._pattern
        if pattern is None:
            with self._lock:
                # Longest first so a secret containing another is masked whole.
                alts = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(re.escape(v) for v in alts))
        return pattern.sub(MASK, text)


secrets = SecretRegistry()


def redact(value: Any, registry: SecretRegistry | None = None) -> Any:
    """A copy of ``value`` (JSON-like) with secret keys and registered secrets masked."""
    reg = registry or secrets
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
