"""The key line at the bottom of every screen: one line of text, not a widget per key.

Textual's ``Footer`` builds a widget for every key and applies CSS to each whenever the
bindings change (every screen switch, focus change and run-state change); with the
console's eight to twelve keys that was most of the cost of a screen switch. This line
shows the same keys (those with ``show=True`` that apply now) and redraws only when the
text changes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

__all__ = ["KeyFooter"]


class KeyFooter(Widget):
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """

    def __init__(self) -> None:
        super().__init__(id="key-footer")
        self._text = Text()

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._update()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Any) -> None:
        if self.is_attached and screen is self.screen:
            self._update()

    def _update(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or not active.enabled or not binding.description:
                continue
            key = self.app.get_key_display(binding)
            if key in seen:
                continue
            seen.add(key)
            if text:
                text.append("  ")
            text.append(key, style="bold reverse")
            text.append(f" {binding.description}")
        if text.plain != self._text.plain:
            self._text = text
            self.refresh()

    def render(self) -> Text:
        return self._text
