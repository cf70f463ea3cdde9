"""Printing text that came from users or steps: never interpreted, never a terminal
control sequence.

:func:`clean` makes control characters visible (``\\x1b``, ``\\u202e``): C0/C1 controls,
DEL, and the Unicode bidirectional overrides that can reorder what a reader sees.
:func:`plain` returns a Rich :class:`~rich.text.Text`, which Rich never parses for
markup, so ``[/bold]`` in a parameter or an actor name prints as itself.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

__all__ = ["clean", "plain"]

_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_CONTROL_NL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escape(m: re.Match[str]) -> str:
    c = ord(m[0])
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def clean(value: Any, *, newlines: bool = False) -> str:
    """``value`` as a string with control characters escaped (tab kept; newline kept
    only with ``newlines``)."""
    text = value if isinstance(value, str) else str(value)
    return (_CONTROL if newlines else _CONTROL_NL).sub(_escape, text)


def plain(value: Any, style: str = "", *, newlines: bool = False) -> Text:
    """A Rich Text of ``value``: escaped controls, no markup."""
    return Text(clean(value, newlines=newlines), style=style)
