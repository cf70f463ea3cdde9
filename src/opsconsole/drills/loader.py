"""Find, load, validate and rewrite ``drills.yaml``, and the production guard.

The file lives in the config directory beside ``inventory.yaml``. A missing file means
"no drills yet". Edits from the CLI rewrite the file atomically; the comment block at
its top is kept (other comments are not: PyYAML does not round-trip them).

Fail closed (see :func:`editing`): an edit holds an exclusive lock on
``.drills.yaml.lock`` from reading the file to renaming the new one into place, so
concurrent edits serialise and none is lost; the new text goes to a temporary file
inside the database transaction that records the audit event, and replaces
``drills.yaml`` only after that transaction committed. If the commit fails, the
temporary file is deleted and ``drills.yaml`` is unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from opsconsole.errors import ConfigError, NotFoundError, OpsError, SourceError

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.config import Config, Inventory
    from opsconsole.drills.model import Drill, DrillsFile

__all__ = [
    "DRILLS_FILE",
    "LoadedDrills",
    "ProductionRefused",
    "check_target",
    "drills_path",
    "editing",
    "load_drills",
    "remove_drill",
    "save_drill",
]

DRILLS_FILE = "drills.yaml"


class ProductionRefused(OpsError):
    """A drill would act on a production region without ``allow_production: true``."""


@dataclass
class LoadedDrills:
    path: Path
    file: DrillsFile
    raw: dict[str, Any]
    header: str
    staged: Path | None = field(default=None, repr=False)

    def get(self, name: str) -> Drill:
        try:
            return self.file.drills[name]
        except KeyError:
            known = ", ".join(sorted(self.file.drills)) or "none defined"
            raise NotFoundError(f"no drill named {name!r} in {self.path} ({known})") from None


def drills_path(config: Config) -> Path:
    return config.directory / DRILLS_FILE


def _header(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("#") or (not line.strip() and lines):
            lines.append(line)
        else:
            break
    return "\n".join(lines).rstrip() + "\n" if lines else ""


def load_drills(config: Config, path: Path | None = None) -> LoadedDrills:
    """Load and validate the drills file (regions checked against the inventory)."""
    from opsconsole.drills.model import DrillsFile
    from opsconsole.yamlsource import load_yaml, read_source_text, validate

    path = path or drills_path(config)
    if not path.is_file():
        return LoadedDrills(path, DrillsFile(), {}, "")
    try:
        text = read_source_text(path)
        data, marks = load_yaml(path, text)
        data = data if data is not None else {}
        model = validate(
            DrillsFile, data, marks, context={"regions": set(config.inventory.regions)}
        )
    except ConfigError:
        raise
    except SourceError as exc:
        raise ConfigError(exc.problems) from None
    return LoadedDrills(path, model, data if isinstance(data, dict) else {}, _header(text))


def check_target(drill: Drill, inventory: Inventory) -> str | None:
    """Why this drill must not run against the inventory as it is now (None: it may).

    The target region, and any parameter naming a region, must not be ``production``
    unless the drill says ``allow_production: true``.
    """
    if drill.allow_production:
        return None
    named = [drill.target] if drill.target else []
    named += [v for v in drill.params.values() if v in inventory.regions]
    for region_id in dict.fromkeys(named):
        region = inventory.regions.get(region_id)
        if region is None:
            return f"target region {region_id!r} is not in the inventory"
        if region.environment == "production":
            return (
                f"refused: region {region_id!r} is production in the inventory; a drill may "
                f"act on it only with allow_production: true"
            )
    return None


def _stage(loaded: LoadedDrills, raw: dict[str, Any]) -> None:
    """Write the new text to a temporary file beside drills.yaml (published by
    :func:`editing` after the audit record committed)."""
    body = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True, default_flow_style=False)
    text = loaded.header + body
    path = loaded.path
    _discard(loaded)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".drills-", suffix=".yaml", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    loaded.staged = Path(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        _discard(loaded)
        raise _write_error(path, exc) from None


def _discard(loaded: LoadedDrills) -> None:
    if loaded.staged is not None:
        loaded.staged.unlink(missing_ok=True)
        loaded.staged = None


def _write_error(path: Path, exc: OSError) -> OpsError:
    from opsconsole.store import store_failure

    failure = store_failure(exc)
    if failure is not None:
        return type(failure)(f"cannot write {path}: {exc.strerror or exc}; nothing was changed")
    return OpsError(f"cannot write {path}: {exc.strerror or exc}; nothing was changed")


@contextlib.contextmanager
def editing(config: Config, db: sqlite_utils.Database) -> Iterator[LoadedDrills]:
    """Load drills.yaml for an edit: yields it inside a database write transaction.

    :func:`save_drill` / :func:`remove_drill` in the block record their audit event in
    that transaction and stage the new file; it is renamed into place only once the
    transaction has committed. An exclusive lock beside the file, held from the read
    to the rename, serialises concurrent edits (otherwise each process rewrites the
    whole file from what it read, and drills added meanwhile are lost).
    """
    from opsconsole.store import immediate

    path = drills_path(config)
    lock_path = path.with_name(".drills.yaml.lock")
    try:
        lock = open(lock_path, "a+")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise _write_error(lock_path, exc) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        loaded = load_drills(config, path)
        try:
            with immediate(db):
                yield loaded
        except BaseException:
            _discard(loaded)
            raise
        if loaded.staged is not None:
            try:
                os.replace(loaded.staged, path)
            except OSError as exc:  # the event is recorded; say plainly the file is not
                _discard(loaded)
                raise OpsError(
                    f"recorded, but cannot replace {path}: {exc.strerror or exc}; "
                    f"run the edit again"
                ) from None
            loaded.staged = None


def _validated(config: Config, loaded: LoadedDrills, raw: dict[str, Any]) -> DrillsFile:
    """Validate the would-be file before writing it; errors name the field edited."""
    from pydantic import ValidationError

    from opsconsole.drills.model import DrillsFile
    from opsconsole.errors import SourceLocation
    from opsconsole.yamlsource import Marks, errors_from_validation

    try:
        return DrillsFile.model_validate(raw, context={"regions": set(config.inventory.regions)})
    except ValidationError as exc:
        where = SourceLocation(f"{loaded.path} (not written)")
        problems = errors_from_validation(exc, raw, Marks(str(loaded.path)))
        raise ConfigError([(where, field, msg) for _, field, msg in problems]) from None


def save_drill(
    config: Config,
    loaded: LoadedDrills,
    name: str,
    fields: dict[str, Any],
    *,
    create: bool,
    before_write: Callable[[Drill], None] | None = None,
) -> Drill:
    """Add (``create``) or update one drill; validates the whole file, then writes it.

    ``fields`` maps drill keys to values; a value of None removes the key.
    ``before_write`` runs after validation and before the file is staged (the caller
    records the audit event there). Call it inside :func:`editing`, which publishes the
    staged file only after the transaction commits (fail closed).
    """
    raw = dict(loaded.raw)
    drills = dict(raw.get("drills") or {})
    if create and name in drills:
        raise OpsError(f"drill {name!r} already exists in {loaded.path}; use `drill edit`")
    if not create and name not in drills:
        loaded.get(name)  # raises NotFoundError naming the known drills
    entry = dict(drills.get(name) or {})
    for key, value in fields.items():
        if value is None:
            entry.pop(key, None)
        elif isinstance(value, dict) and key != "params":  # params are replaced whole
            merged = {**(entry.get(key) or {}), **value}
            entry[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            entry[key] = value
    drills[name] = entry
    raw["drills"] = drills
    model = _validated(config, loaded, raw)
    if before_write is not None:
        before_write(model.drills[name])
    _stage(loaded, _plain(raw))
    loaded.raw, loaded.file = raw, model
    return model.drills[name]


def remove_drill(
    loaded: LoadedDrills, name: str, before_write: Callable[[Drill], None] | None = None
) -> None:
    drill = loaded.get(name)
    if before_write is not None:
        before_write(drill)
    raw = dict(loaded.raw)
    drills = dict(raw.get("drills") or {})
    drills.pop(name)
    raw["drills"] = drills
    _stage(loaded, _plain(raw))
    loaded.raw = raw
    del loaded.file.drills[name]


def _plain(value: Any) -> Any:
    """Plain YAML types (datetimes as ISO strings) so the file stays readable."""
    from datetime import datetime

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def option_fields(
    *,
    plan: str | None = None,
    kind: str | None = None,
    runbook: str | None = None,
    params: list[str] | None = None,
    target: str | None = None,
    cron: str | None = None,
    at: str | None = None,
    timezone: str | None = None,
    rto: float | None = None,
    rpo: float | None = None,
    owner: str | None = None,
    description: str | None = None,
    grace: float | None = None,
    allow_production: bool | None = None,
    fail_back: bool | None = None,
    enabled: bool | None = None,
) -> dict[str, Any]:
    """The drill fields given as options (None: not given), for :func:`save_drill`.

    ``params`` are ``KEY=VALUE`` strings; ``cron`` and ``at`` replace each other.
    """
    simple = {
        "plan": plan,
        "kind": kind,
        "runbook": runbook,
        "target": target,
        "owner": owner,
        "description": description,
        "grace_seconds": grace,
        "allow_production": allow_production,
        "fail_back": fail_back,
        "enabled": enabled,
    }
    fields: dict[str, Any] = {k: v for k, v in simple.items() if v is not None}
    if params:
        fields["params"] = {}
        for item in params:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise OpsError(f"--param {item!r}: use KEY=VALUE")
            fields["params"][key.strip()] = value
    if cron is not None or at is not None or timezone is not None:
        sched: dict[str, Any] = {}
        if cron is not None:
            sched.update(cron=cron, at=None)
        if at is not None:
            sched.update(at=at, cron=None)
        if timezone is not None:
            sched["timezone"] = timezone
        fields["schedule"] = sched
    objectives = {k: v for k, v in (("rto_seconds", rto), ("rpo_seconds", rpo)) if v is not None}
    if objectives:
        fields["objectives"] = objectives
    return fields


def overview(loaded: LoadedDrills, inventory: Inventory) -> list[dict[str, Any]]:
    """One row per drill: definition, next due date (UTC ISO) and the guard's verdict."""
    from opsconsole.drills.schedule import make_trigger, next_due
    from opsconsole.timeutil import isoformat, utcnow

    now, rows = utcnow(), []
    for name, d in sorted(loaded.file.drills.items()):
        upcoming = None
        if d.schedule and d.enabled:
            trigger = make_trigger(d.schedule.cron, d.schedule.at, d.schedule.timezone)
            upcoming = next_due(trigger, now)
        rows.append(
            {
                "name": name,
                "plan": d.plan,
                "kind": d.kind,
                "runbook": d.runbook,
                "target": d.target,
                "schedule": d.schedule.describe() if d.schedule else None,
                "enabled": d.enabled,
                "next_due": isoformat(upcoming) if upcoming else None,
                "rto_seconds": d.objectives.rto_seconds,
                "rpo_seconds": d.objectives.rpo_seconds,
                "owner": d.owner,
                "refused": check_target(d, inventory),
            }
        )
    return rows
