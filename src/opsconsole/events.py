"""Events that flow out of every capability, and a small publish/subscribe bus.

Engines publish; sinks (the audit log, the CLI renderer, the TUI, notifiers) subscribe.
Nothing deep inside an engine prints.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsconsole.timeutil import utcnow

__all__ = ["Event", "EventBus", "Handler"]


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event. Subclasses live beside the capability that emits them."""

    at: datetime = field(default_factory=utcnow)

    @property
    def kind(self) -> str:
        return type(self).__name__


Handler = Callable[[Event], Awaitable[None] | None]


class EventBus:
    """Synchronous fan-out to subscribers; async handlers are scheduled on the running loop.

    A failing subscriber must not break the engine or the other subscribers, so its
    exception is collected in ``errors`` (and re-raised only for ``critical`` handlers,
    e.g. the audit sink, whose failure must stop the action).
    """

    def __init__(self) -> None:
        self._subs: list[tuple[type[Event], Handler, bool]] = []
        self.errors: list[BaseException] = []
        self._tasks: set[asyncio.Future[None]] = set()

    def subscribe(
        self, handler: Handler, kind: type[Event] = Event, *, critical: bool = False
    ) -> Callable[[], None]:
        entry = (kind, handler, critical)
        self._subs.append(entry)

        def unsubscribe() -> None:
            if entry in self._subs:
                self._subs.remove(entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for kind, handler, critical in list(self._subs):
            if not isinstance(event, kind):
                continue
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception as exc:
                if critical:
                    raise
                self.errors.append(exc)


def payload(event: Event) -> dict[str, Any]:
    """The event's fields as a JSON-friendly dict (for the audit log and webhooks)."""
    from dataclasses import asdict

    data = asdict(event)
    data["at"] = event.at.isoformat()
    return data
