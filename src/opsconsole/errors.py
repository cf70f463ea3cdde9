"""The exception hierarchy and process exit codes.

A user error is an :class:`OpsError`: the CLI prints its message on one line (or a
short block) and exits with its ``exit_code``. Anything else that escapes is a bug.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AuditIntegrityError",
    "AuditWriteError",
    "ConfigError",
    "ExitCode",
    "NotFoundError",
    "OpsError",
    "SourceError",
    "SourceLocation",
    "StoreError",
]


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    CONFIG = 3
    NOT_FOUND = 4
    AUDIT_WRITE = 5
    AUDIT_TAMPERED = 6
    CONFLICT = 7
    DENIED = 8  # the access policy refuses the acting account


class OpsError(Exception):
    """A user-facing error: a clear message and a distinct exit code."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class SourceLocation:
    """Where in a YAML file something is: ``file:line:col``, 1-based."""

    __slots__ = ("column", "file", "line")

    def __init__(self, file: str, line: int | None = None, column: int | None = None) -> None:
        self.file = file
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


class SourceError(OpsError):
    """A problem in a user-written file; each problem names file:line:col and field."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[tuple[SourceLocation, str, str]]) -> None:
        self.problems = problems
        lines = [f"{loc}: {field + ': ' if field else ''}{msg}" for loc, field, msg in problems]
        super().__init__("\n".join(lines))


class ConfigError(SourceError):
    """The inventory, settings or drills file is invalid."""


class NotFoundError(OpsError):
    exit_code = ExitCode.NOT_FOUND


class StoreError(OpsError):
    """The database cannot be opened or written (read-only, full, locked for too long)."""

    exit_code = ExitCode.AUDIT_WRITE


class AuditWriteError(StoreError):
    """The audit record of an action could not be written, so the action did not run."""


class AuditIntegrityError(OpsError):
    exit_code = ExitCode.AUDIT_TAMPERED
