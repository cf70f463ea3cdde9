"""``opsconsole tui``: the Textual console."""

from __future__ import annotations

from typing import Annotated

import typer

from opsconsole.cli.state import state

__all__ = ["tui"]


def tui(
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Hide every action that changes something.")
    ] = False,
) -> None:
    """Open the console: dashboard, runbooks, incidents, drills, audit (keys: ? for help)."""
    open_console(read_only=read_only)


def open_console(*, read_only: bool = False) -> None:
    """Run the console on the current --config / --db (also used by ``opsconsole demo``)."""
    from opsconsole.tui.app import run_tui

    run_tui(
        config=state.optional_config(),
        db_path=state.database_path(),
        # The OS account; opening the audit log also applies the config's access policy.
        actor=state.audit().actor,
        read_only=read_only,
        audit_key=state.audit_key(),
    )
