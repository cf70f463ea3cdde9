"""What templates see, how parameters are checked, and the step list a run executes."""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import TYPE_CHECKING, Any

from opsconsole.errors import OpsError
from opsconsole.redact import MIN_SECRET_LEN, secrets
from opsconsole.runbooks.schema import ApprovalAction, Runbook, Step
from opsconsole.templating import Namespace, secret_functions

if TYPE_CHECKING:
    from opsconsole.config import Config

__all__ = [
    "APPROVAL_STEP_ID",
    "ROLLBACK_APPROVAL_STEP_ID",
    "RunbookRunError",
    "capabilities",
    "coerce_params",
    "expand_steps",
    "template_context",
]

APPROVAL_STEP_ID = "requires-approval"
ROLLBACK_APPROVAL_STEP_ID = "requires-rollback-approval"


class RunbookRunError(OpsError):
    """A run cannot start or continue (bad parameters, finished run, ...)."""


def capabilities() -> dict[str, bool]:
    """Which optional capabilities exist, for ``when: capabilities.incidents``."""
    names = {
        "incidents": "opsconsole.incidents",
        "notify": "opsconsole.notify",
        "ssh": "opsconsole.ssh",
        "drills": "opsconsole.drills",
        "health": "opsconsole.health",
    }
    out = {}
    for key, module in names.items():
        try:
            out[key] = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            out[key] = False
    return out


def _coerce(name: str, kind: str, value: Any) -> Any:
    if kind == "string":
        return value if isinstance(value, str) else str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise RunbookRunError(f"parameter {name}: {value!r} is not a boolean (true/false)")
    try:
        return int(value) if kind == "int" else float(value)
    except (TypeError, ValueError):
        raise RunbookRunError(
            f"parameter {name}: {value!r} is not {'an integer' if kind == 'int' else 'a number'}"
        ) from None


def coerce_params(rb: Runbook, given: dict[str, Any]) -> dict[str, Any]:
    """Check ``given`` against the runbook's params: unknown, missing, type, choices.
    Secret values are registered for redaction here."""
    unknown = sorted(set(given) - set(rb.params))
    if unknown:
        known = ", ".join(rb.params) or "none"
        raise RunbookRunError(
            f"unknown parameter(s) {', '.join(unknown)} for runbook {rb.name} (known: {known})"
        )
    out: dict[str, Any] = {}
    for name, p in rb.params.items():
        if name in given and given[name] is not None:
            value = _coerce(name, p.type, given[name])
        elif p.default is not None:
            value = _coerce(name, p.type, p.default)
        elif p.required:
            raise RunbookRunError(f"parameter {name} is required (--var {name}=...)")
        else:
            value = None
        if isinstance(value, str) and value.startswith("-") and not p.allow_dash:
            raise RunbookRunError(
                f"parameter {name}: {value!r} starts with '-' and would be read as an option "
                "where it becomes a command argument; if that is intended, the runbook "
                "declares allow_dash: true for it"
            )
        if value is not None and p.pattern is not None and not re.fullmatch(p.pattern, str(value)):
            raise RunbookRunError(
                f"parameter {name}: {value!r} does not match the pattern {p.pattern!r}"
            )
        if value is not None and p.choices and value not in p.choices:
            raise RunbookRunError(
                f"parameter {name}: {value!r} is not one of {', '.join(map(str, p.choices))}"
            )
        if p.secret and value is not None:
            if len(str(value)) < MIN_SECRET_LEN:
                raise RunbookRunError(
                    f"parameter {name} is secret and must be at least {MIN_SECRET_LEN} "
                    "characters long (shorter values cannot be redacted reliably)"
                )
            secrets.add(str(value))
        out[name] = value
    return out


def expand_steps(rb: Runbook, *, rollback_gate: bool = True) -> list[tuple[str, int, Step]]:
    """(phase, index, step) in order of declaration. ``requires_approval`` adds an
    approval step before the first main step that is not read-only, and one that the
    rollback runs first (rollback steps run in reverse: it is the last one here). The
    executor skips the rollback's gate when the run's own approval covers the rollback
    (an automatic rollback of an approved run); ``rollback_gate=False``: runs recorded
    before the rollback had a gate."""
    main = list(rb.steps)
    rollback = list(rb.rollback)
    if rb.requires_approval:
        first = next((i for i, s in enumerate(main) if not s.read_only), len(main))
        gate = Step(
            id=APPROVAL_STEP_ID,
            name="Approval required before changes",
            approval=ApprovalAction(message=f"approve running {rb.name}"),
        )
        main.insert(first, gate)
        if rollback and rollback_gate:
            rollback.append(
                Step(
                    id=ROLLBACK_APPROVAL_STEP_ID,
                    name="Approval required before rolling back",
                    approval=ApprovalAction(message=f"approve rolling back {rb.name}"),
                )
            )
    return [("main", i, s) for i, s in enumerate(main)] + [
        ("rollback", i, s) for i, s in enumerate(rollback)
    ]


def template_context(
    rb: Runbook,
    params: dict[str, Any],
    config: Config,
    run: dict[str, Any],
    db: Any = None,
) -> dict[str, Any]:
    """Params (also at top level), inventory, ``vars``, ``steps`` (outputs), run metadata."""
    inv = config.inventory.model_dump(mode="json")
    ctx: dict[str, Any] = {
        **params,
        "params": dict(params),
        "inventory": inv,
        "vars": inv.get("vars", {}),
        "regions": inv.get("regions", {}),
        "steps": Namespace(),
        "run": run,
        "capabilities": capabilities(),
        "config_dir": str(config.directory),
        # For shell steps that call Python or opsconsole itself, independent of PATH.
        "python": sys.executable,
        "opsconsole": _cli_argv(config, run, db),
    }
    ctx.update(secret_functions(frozenset(config.settings.secret_env)))
    return ctx


def _cli_argv(config: Config, run: dict[str, Any], db: Any) -> list[str]:
    """How a shell step calls opsconsole: same interpreter, config and database. The
    child acts as the same OS account, so no identity is passed (there is no flag that
    could set one)."""
    argv = [sys.executable, "-m", "opsconsole", "--config", str(config.directory)]
    if db is not None:
        from opsconsole.store.postgres import without_password

        # A password never goes on a command line (any local user can read those): the
        # child finds it where the parent did (PGPASSWORD, ~/.pgpass, a service file).
        argv += ["--db", without_password(str(db.location))]
    return argv
