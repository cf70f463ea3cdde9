"""The TUI implementation of :class:`opsconsole.operator.Operator`: modal screens.

Engines run as Textual workers on the app's loop, so a prompt is a dialog pushed with
``push_screen(..., wait_for_dismiss=True)`` and awaited. Asked from outside a worker,
the dialog is shown from a worker started for it; asked from another thread, the
question hops onto the app's loop first.

Key safety: ``esc`` in a question decides nothing. The question stays open (the run
view says "waiting for you") and ``enter`` on the run view asks it again. A ``y`` or
``enter`` typed on the run view before a non-destructive question appeared answers that
question (it is not lost), and the run's log says so.

A manual step shows its instructions and then asks "done?": the instructions are shown
inside that one confirmation dialog, so the person reads and answers in one place
(``enter`` or ``y``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsconsole.tui.screens.modals import AskModal, ConfirmModal, ShowModal

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen

__all__ = ["PromptCancelled", "TuiOperator", "is_destructive"]

# A key typed ahead answers the next question only if that question comes this soon.
TYPE_AHEAD_SECONDS = 30.0

_DESTRUCTIVE_WORDS = ("roll back", "rollback", "abort", "delete", "deny", "destroy", "drop")


def is_destructive(prompt: str) -> bool:
    """A question whose yes undoes or stops something: ``enter`` must not answer it."""
    text = prompt.lower()
    return any(word in text for word in _DESTRUCTIVE_WORDS)


class PromptCancelled(Exception):
    """The person closed an input dialog without answering."""


class TuiOperator:
    """Asks the person at the console through modal dialogs."""

    name = "tui"

    def __init__(
        self,
        app: App[Any],
        *,
        on_text: Callable[[str], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.on_text = on_text  # also log shown instructions (the run view's output)
        self.on_change = on_change  # the run view redraws its status line
        self.pending: str | None = None  # the open question (dialog up or put off)
        self.dialog_open = False
        self.typed_ahead: tuple[str, float] | None = None
        self._shown: list[str] = []
        self._reopen: asyncio.Event | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    # --- the person's side (run view keys) -----------------------------------------

    @property
    def put_off(self) -> bool:
        """A question is open but its dialog was closed with esc."""
        return self.pending is not None and not self.dialog_open

    def reopen(self) -> bool:
        """Ask the put-off question again (``enter`` on the run view); True if there was one."""
        if self.put_off and self._reopen is not None:
            self._reopen.set()
            return True
        return False

    def type_ahead(self, key: str) -> None:
        """Keep ``key`` (y/enter) for the next question, which has not appeared yet."""
        self.typed_ahead = (key, time.monotonic())

    def _take_typed_ahead(self) -> str | None:
        key, self.typed_ahead = self.typed_ahead, None
        if key is None or time.monotonic() - key[1] > TYPE_AHEAD_SECONDS:
            return None
        return key[0]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # --- showing dialogs ----------------------------------------------------------------

    async def _push(self, screen: Screen[Any]) -> Any:
        from textual.worker import NoActiveWorker, get_current_worker

        try:
            get_current_worker()
        except NoActiveWorker:
            worker = self.app.run_worker(self._push(screen), exit_on_error=False)
            await worker.wait()
            return worker.result
        try:
            return await self.app.push_screen(screen, wait_for_dismiss=True)
        except asyncio.CancelledError:
            # The run was aborted while asking: take the stale question away.
            if screen.is_attached and self.app.screen is screen:
                self.app.pop_screen()
            raise

    async def _modal(self, make: Callable[[], Screen[Any]], label: str) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            # Asked from another thread: ask on the app's loop and wait here.
            return await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._modal(make, label), self._loop)
            )
        self._reopen = asyncio.Event()
        self.pending = label
        try:
            while True:
                self.dialog_open = True
                self._changed()
                try:
                    answer = await self._push(make())
                finally:
                    self.dialog_open = False
                if answer is not None:
                    return answer
                # esc: nothing decided. Wait until the person asks for the question again.
                self._reopen.clear()
                self._changed()
                await self._reopen.wait()
        finally:
            self.pending = None
            self._changed()

    def _take_shown(self) -> str:
        text = "\n\n".join(self._shown)
        self._shown.clear()
        return text

    async def confirm(self, prompt: str, *, default: bool = False, auto_ok: bool = False) -> bool:
        shown = self._take_shown()
        body = f"{shown}\n\n{prompt}" if shown else prompt
        destructive = is_destructive(prompt)
        key = self._take_typed_ahead()
        if key is not None and not destructive:
            if self.on_text is not None:
                self.on_text(f"✔ {prompt} yes ({key} typed before the question appeared)")
            return True
        answer = await self._modal(
            lambda: ConfirmModal(
                body,
                destructive=destructive,
                title="Confirm (destructive: enter does not answer)" if destructive else "Confirm",
            ),
            prompt,
        )
        return bool(answer)

    async def ask(
        self,
        prompt: str,
        *,
        secret: bool = False,
        default: str | None = None,
        validate: Callable[[str], str | None] | None = None,
    ) -> str:
        shown = self._take_shown()
        body = f"{shown}\n\n{prompt}" if shown else prompt
        answer = await self._modal(
            lambda: AskModal(body, secret=secret, default=default, validate=validate), prompt
        )
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
        await self._modal(lambda: ShowModal(text), "instructions")
