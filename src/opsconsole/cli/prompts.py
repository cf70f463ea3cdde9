"""The terminal :class:`~opsconsole.operator.Operator`: questions on the terminal.

Prompts run in a worker thread so a Ctrl-C still reaches the engine (which then asks
whether to roll back). With ``assume_yes`` every yes/no question is answered yes (and
says so); values are still asked for. A closed stdin is never taken as a yes.
"""

from __future__ import annotations

import asyncio

import typer

from opsconsole.operator import NeedsAPerson

__all__ = ["TerminalOperator"]


class TerminalOperator:
    name = "terminal"

    def __init__(self, *, assume_yes: bool = False) -> None:
        self.assume_yes = assume_yes

    async def confirm(self, prompt: str, *, default: bool = False, auto_ok: bool = False) -> bool:
        if self.assume_yes:
            typer.echo(f"{prompt} [yes: --yes]", err=True)
            return True
        try:
            return bool(await asyncio.to_thread(typer.confirm, prompt, default=default, err=True))
        except (typer.Abort, EOFError):
            raise NeedsAPerson(f"no answer from the terminal: {prompt}") from None

    async def ask(self, prompt: str, *, secret: bool = False, default: str | None = None) -> str:
        try:
            value = await asyncio.to_thread(
                typer.prompt,
                prompt,
                default=default,
                hide_input=secret,
                err=True,
                show_default=not secret,
            )
        except (typer.Abort, EOFError):
            raise NeedsAPerson(f"no answer from the terminal: {prompt}") from None
        return str(value)

    async def show(self, text: str) -> None:
        from rich.console import Console
        from rich.panel import Panel
        from rich.text import Text

        Console(stderr=True, highlight=False).print(Panel(Text(text), border_style="cyan"))
