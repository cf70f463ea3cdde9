"""``opsconsole rules``: check and list the rules of ``rules.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opsconsole.cli.state import print_json, state

app = typer.Typer(
    help="Rules (rules.yaml): alerts, health changes, missed deadlines -> actions.",
    no_args_is_help=True,
)


def _load(path: Path | None):  # type: ignore[no-untyped-def]
    from opsconsole.rules.model import load_rules, rules_path

    config = state.config()
    if path is not None and not path.is_file():
        from opsconsole.errors import NotFoundError

        raise NotFoundError(f"rules file not found: {path}")
    return load_rules(config, path), path or rules_path(config)


@app.command("validate")
def validate(
    path: Annotated[Path | None, typer.Argument(help="Rules file (default: rules.yaml).")] = None,
) -> None:
    """Check the rules file; each problem as file:line:col: field: message (exit 3)."""
    rules, where = _load(path)
    typer.echo(f"{where}: {len(rules.rules)} rule(s) OK")


@app.command("list")
def list_(
    path: Annotated[Path | None, typer.Argument(help="Rules file (default: rules.yaml).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each rule with its trigger, actions and cool-down."""
    rules, _ = _load(path)
    if as_json:
        print_json([r.model_dump(mode="json", exclude_none=True) for r in rules.rules])
        return
    for r in rules.rules:
        actions = [k for k in ("incident", "runbook", "notify") if getattr(r.then, k)]
        extra = ""
        if r.then.runbook is not None:
            extra = f" ({r.then.runbook.name}{', safe' if r.then.runbook.safe else ', approval'})"
        typer.echo(
            f"{r.name}: when {r.when.kind} -> {', '.join(actions)}{extra}; "
            f"cool-down {r.cooldown_seconds:g}s" + ("" if r.enabled else " [disabled]")
        )
    if not rules.rules:
        typer.echo("no rules")
