"""Everything that needs a human goes through an Operator.

Three implementations: terminal prompts (``cli``), modal screens (``tui``), and
:class:`UnattendedOperator` for the scheduler, which answers only what the runbook
marked safe to auto-answer and otherwise fails the run with a clear reason.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["NeedsAPerson", "Operator", "UnattendedOperator"]


class NeedsAPerson(Exception):
    """An unattended run reached something only a person may answer."""


@runtime_checkable
class Operator(Protocol):
    """How an engine asks a person. Methods are async so a TUI can show a modal."""

    name: str

    async def confirm(self, prompt: str, *, default: bool = False, auto_ok: bool = False) -> bool:
        """Ask yes/no. ``auto_ok``: the runbook allows an unattended yes here."""

    async def ask(self, prompt: str, *, secret: bool = False, default: str | None = None) -> str:
        """Ask for a value."""

    async def show(self, text: str) -> None:
        """Show instructions (a manual step's body)."""


class UnattendedOperator:
    """For scheduled drills: nobody is there to answer."""

    name = "unattended"

    def __init__(self, where: str = "") -> None:
        self.where = where

    async def confirm(self, prompt: str, *, default: bool = False, auto_ok: bool = False) -> bool:
        if auto_ok:
            return True
        raise NeedsAPerson(f"needs a person{(' at ' + self.where) if self.where else ''}: {prompt}")

    async def ask(self, prompt: str, *, secret: bool = False, default: str | None = None) -> str:
        if default is not None:
            return default
        raise NeedsAPerson(f"needs a person{(' at ' + self.where) if self.where else ''}: {prompt}")

    async def show(self, text: str) -> None:
        return None
