"""The TUI implementation of :class:`opsconsole.operator.Operator`: modal screens.

Engines run as asyncio tasks on the app's event loop (Textual workers), so a prompt is a
modal pushed with a callback that resolves a future the engine awaits. Called from
another thread, the prompt is marshalled onto the app's loop first.

A manual step shows its instructions and then asks "done?": the instructions are kept
and shown inside that one confirmation dialog, so the person reads and answers in one
place (one key: ``y``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsconsole.tui.screens.modals import AskModal, ConfirmModal, ShowModal

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen

__all__ = ["PromptCancelled", "TuiOperator"]


class PromptCancelled(Exception):
    """The person closed an input dialog without answering."""


class TuiOperator:
    """Asks the person at the console through modal dialogs."""

    name = "tui"

    def __init__(self, app: App[Any], *, on_text: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.on_text = on_text  # also log shown instructions (the run view's output)
        self.pending: str | None = None  # the open question, while a dialog is up
        self._shown: list[str] = []

    async def _modal(self, screen: Screen[Any], label: str) -> Any:
        if threading.get_ident() != self.app._thread_id:
            loop = self.app._loop
            assert loop is not None
            return await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._modal(screen, label), loop)
            )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(result: Any) -> None:
            if not future.done():
                future.set_result(result)

        self.pending = label
        try:
            self.app.push_screen(screen, callback=done)
            return await future
        except asyncio.CancelledError:
            # The run was aborted while asking: take the stale question away.
            if screen in self.app.screen_stack and self.app.screen is screen:
                self.app.pop_screen()
            raise
        finally:
            self.pending = None

    def _take_shown(self) -> str:
        text = "\n\n".join(self._shown)
        self._shown.clear()
        return text

    async def confirm(self, prompt: str, *, default: bool = False, auto_ok: bool = False) -> bool:
        shown = self._take_shown()
        body = f"{shown}\n\n{prompt}" if shown else prompt
        answer = await self._modal(ConfirmModal(body, default=default), prompt)
        return bool(answer)

    async def ask(self, prompt: str, *, secret: bool = False, default: str | None = None) -> str:
        shown = self._take_shown()
        body = f"{shown}\n\n{prompt}" if shown else prompt
        answer = await self._modal(AskModal(body, secret=secret, default=default), prompt)
        if answer is None:
            raise PromptCancelled(f"no answer to {prompt!r}")
        return str(answer)

    async def show(self, text: str) -> None:
        """Kept for the next question; shown on its own only if none follows soon."""
        if self.on_text is not None:
            for line in text.splitlines():
                self.on_text(f"  │ {line}")
        self._shown.append(text)

    async def show_now(self, text: str) -> None:
        """A dialog with just ``text`` (enter closes it)."""
        await self._modal(ShowModal(text), "instructions")
