"""The Textual console. ``create_app`` builds it; ``run_tui`` runs it (see app.py)."""

from __future__ import annotations

__all__ = ["create_app", "run_tui"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from opsconsole.tui import app

        return getattr(app, name)
    raise AttributeError(name)
