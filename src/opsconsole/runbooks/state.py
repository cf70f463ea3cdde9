"""Durable run state: the ``runs`` / ``run_steps`` tables and their transitions.

Every transition is one ``BEGIN IMMEDIATE`` transaction holding both the row update
and its audit record, so both commit or neither does (fail closed: if the audit record
cannot be written, the state does not move and the step's side effect never starts).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlite_utils

from opsconsole import leases
from opsconsole.errors import ExitCode, NotFoundError, OpsError
from opsconsole.leases import Holder, Lease, LeaseHeld
from opsconsole.redact import redact
from opsconsole.runbooks.context import RunbookRunError
from opsconsole.runbooks.procs import proc_start
from opsconsole.store import immediate
from opsconsole.store.migrations import Migrations
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    from opsconsole.audit import AuditLog

__all__ = [
    "CLAIMABLE_STEP",
    "FINISHED_STEP",
    "TERMINAL_RUN",
    "RunClaimed",
    "RunRow",
    "RunTampered",
    "StepClaimLost",
    "StepRow",
    "claim_run",
    "content_digest",
    "create_run",
    "get_run",
    "get_step",
    "get_steps",
    "list_runs",
    "migrations",
    "proven_start",
    "release_run",
    "run_lease",
    "run_owner",
    "sealed_results",
    "set_run",
    "set_step",
]

migrations = Migrations("opsconsole.runbooks")

# A step in one of these states never runs again.
FINISHED_STEP = frozenset({"succeeded", "failed", "timed_out", "skipped"})
# A step may move to running (or be skipped) only from one of these (compare-and-set).
CLAIMABLE_STEP = frozenset({"pending", "interrupted", "retrying", "waiting_approval"})
TERMINAL_RUN = frozenset({"succeeded", "failed", "timed_out", "rolled_back", "aborted"})
OUTPUT_LIMIT = 64 * 1024


@migrations(name="0001_runs")
def _m0001(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            runbook TEXT NOT NULL,
            path TEXT NOT NULL,
            source TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            secret_params TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL,
            mode TEXT NOT NULL DEFAULT 'normal',
            phase TEXT NOT NULL DEFAULT 'main',
            actor TEXT NOT NULL,
            parent_run TEXT,
            incident_id TEXT,
            lock_key TEXT,
            pid INTEGER,
            hostname TEXT,
            started_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT,
            error TEXT,
            measured TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.execute("CREATE INDEX runs_status ON runs(status)")
    db.execute(
        """
        CREATE TABLE run_steps (
            run_id TEXT NOT NULL REFERENCES runs(id),
            phase TEXT NOT NULL,
            idx INTEGER NOT NULL,
            step_id TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            action TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            started_at TEXT,
            finished_at TEXT,
            rendered TEXT,
            output TEXT NOT NULL DEFAULT '',
            truncated INTEGER NOT NULL DEFAULT 0,
            result TEXT,
            error TEXT,
            PRIMARY KEY (run_id, phase, idx)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE run_locks (
            key TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            actor TEXT NOT NULL,
            pid INTEGER,
            hostname TEXT,
            acquired_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE run_approvals (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            step_id TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            requested_by TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            decision TEXT NOT NULL DEFAULT 'pending',
            decided_by TEXT,
            decided_at TEXT,
            comment TEXT
        )
        """
    )


@migrations(name="0002_run_claims")
def _m0002(db: sqlite_utils.Database) -> None:
    """Who owns a running run (claimed by compare-and-set), the process identity of
    each step's processes, and the encrypted secrets a run needs to resume."""
    db.execute("ALTER TABLE runs ADD COLUMN pid_start INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN claimed_at TEXT")
    db.execute("ALTER TABLE run_steps ADD COLUMN proc_token TEXT")
    db.execute("ALTER TABLE run_steps ADD COLUMN result_sealed BLOB")
    db.execute("ALTER TABLE run_locks ADD COLUMN pid_start INTEGER")
    db.execute(
        """
        CREATE TABLE run_secrets (
            run_id TEXT NOT NULL REFERENCES runs(id),
            name TEXT NOT NULL,
            sealed BLOB NOT NULL,
            PRIMARY KEY (run_id, name)
        )
        """
    )


@migrations(name="0003_run_leases")
def _m0003(db: sqlite_utils.Database) -> None:
    """Who owns a running run is a lease now (``run:<id>``, see :mod:`opsconsole.leases`;
    its set is registered before this one by the import above). Runs left ``running``
    by an earlier version get a lease from their row, last renewed at their last update:
    stale at once if that process is gone, else when it has been silent for 30 s."""
    from datetime import timedelta

    from opsconsole.timeutil import parse_when

    rows = db.execute(
        "SELECT id, COALESCE(owner, actor), hostname, pid, pid_start, "
        "COALESCE(claimed_at, started_at), updated_at FROM runs "
        "WHERE status = 'running' AND pid IS NOT NULL AND hostname IS NOT NULL"
    ).fetchall()
    for run_id, account, host, pid, pid_start, since, updated in rows:
        expires = parse_when(updated) + timedelta(seconds=leases.DEFAULT_SECONDS)
        db.execute(
            "INSERT INTO leases (name, token, account, host, pid, pid_start, acquired_at, "
            "heartbeat_at, expires_at, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_lease(run_id),
                f"migrated-{run_id}",
                account,
                host,
                pid,
                pid_start,
                since,
                updated,
                isoformat(expires),
                leases.DEFAULT_SECONDS,
            ],
        )


def run_lease(run_id: str) -> str:
    """The name of the lease held by the process that executes run ``run_id``."""
    return f"run:{run_id}"


class RunClaimed(RunbookRunError):
    """Another live process owns the run (or it is not in a state that can be claimed)."""

    exit_code = ExitCode.CONFLICT


class StepClaimLost(OpsError):
    """A step could not move to running: another process owns the run or the step."""

    exit_code = ExitCode.CONFLICT


@dataclass
class RunRow:
    id: str
    runbook: str
    path: str
    source: str
    params: dict[str, Any]
    secret_params: list[str]
    status: str
    mode: str
    phase: str
    actor: str
    parent_run: str | None
    incident_id: str | None
    lock_key: str | None
    pid: int | None
    hostname: str | None
    started_at: str
    updated_at: str
    finished_at: str | None
    error: str | None
    measured: dict[str, float]
    pid_start: int | None = None
    owner: str | None = None
    claimed_at: str | None = None


@dataclass
class StepRow:
    run_id: str
    phase: str
    idx: int
    step_id: str
    name: str
    action: str
    status: str
    attempts: int
    started_at: str | None
    finished_at: str | None
    rendered: Any
    output: str
    truncated: bool
    result: Any
    error: str | None
    proc_token: str | None = None


def _now() -> str:
    return isoformat(utcnow())


def bound_output(text: str, limit: int = OUTPUT_LIMIT) -> tuple[str, bool]:
    """Keep the head and the tail of long output, marking what was cut."""
    if len(text) <= limit:
        return text, False
    head, tail = text[: limit * 3 // 4], text[-(limit // 4) :]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[... {cut} characters truncated ...]\n{tail}", True


class RunTampered(RunbookRunError):
    """A run's stored text, params or starter differ from what its start recorded."""

    exit_code = ExitCode.AUDIT_TAMPERED


def content_digest(
    runbook: str,
    path: str,
    source: str,
    params: dict[str, Any],
    secret_params: list[str],
    mode: str,
    actor: str,
    parent_run: str | None,
    incident_id: str | None,
) -> str:
    """SHA-256 of what a run *is* (runbook text, params, starter...): recorded in its
    chained start event, so an approval is an approval of exactly this."""
    blob = json.dumps(
        [runbook, path, source, params, secret_params, mode, actor, parent_run, incident_id],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def proven_start(audit: AuditLog, run: RunRow) -> dict[str, Any]:
    """The run's ``runbook.run.started`` event, proven by the chain, after checking that the
    ``runs`` row still holds what it recorded.

    ``runs`` is an ordinary table that every member of a bastion's group can write: a
    resume, rollback or approval must never act on an edited runbook text, params or
    starter (e.g. approve ``region: stg-1``, then edit it to ``prd-1`` before resuming).
    Refused with :class:`RunTampered` (audited ``runbook.run.tampered``, denied)."""
    from opsconsole.access import proven_event

    event = proven_event(audit, ["runbook.run.started"], run.id)
    recorded = event["details"].get("content_sha256") if event is not None else None
    if event is not None and recorded is None:
        return event  # started before runs carried a digest: nothing to compare
    now = content_digest(
        run.runbook,
        run.path,
        run.source,
        run.params,
        run.secret_params,
        run.mode,
        run.actor,
        run.parent_run,
        run.incident_id,
    )
    if event is not None and now == recorded:
        return event
    why = "no verifiable start event" if event is None else "content differs from its start"
    audit.record(
        "runbook.run.tampered",
        run.id,
        {"reason": why, "recorded_sha256": recorded, "stored_sha256": now},
        "denied",
    )
    raise RunTampered(
        f"run {run.id} was edited after it started ({why}: its runbook text, params or "
        "starter in the runs table are not what the audit log recorded); refusing to act "
        "on it. Abort it and start the runbook again; `opsconsole audit verify` for the rest"
    )


def create_run(
    db: sqlite_utils.Database,
    audit: AuditLog,
    *,
    run_id: str,
    runbook: str,
    path: str,
    source: str,
    params: dict[str, Any],
    secret_params: list[str],
    mode: str,
    parent_run: str | None,
    incident_id: str | None,
    steps: list[tuple[str, int, str, str, str]],
    pinned: dict[str, str] | None = None,
    lease_seconds: float = leases.DEFAULT_SECONDS,
) -> None:
    """Insert the run and one pending row per step (phase, idx, id, name, action); this
    process holds the run's lease (heartbeaten until :func:`release_run`).

    ``pinned``: sub-runbook name -> SHA-256 of its text at the start (see engine)."""
    now = _now()
    with immediate(db):
        taken = leases.acquire(
            db, audit, run_lease(run_id), Holder.me(audit.actor), seconds=lease_seconds
        )
        db.execute(
            "INSERT INTO runs (id, runbook, path, source, params, secret_params, status, mode, "
            "actor, parent_run, incident_id, pid, hostname, started_at, updated_at, "
            "pid_start, owner, claimed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                runbook,
                path,
                source,
                json.dumps(redact(params)),
                json.dumps(secret_params),
                mode,
                audit.actor,
                parent_run,
                incident_id,
                os.getpid(),
                socket.gethostname(),
                now,
                now,
                proc_start(os.getpid()),
                audit.actor,
                now,
            ],
        )
        for phase, idx, step_id, name, action in steps:
            db.execute(
                "INSERT INTO run_steps (run_id, phase, idx, step_id, name, action) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, phase, idx, step_id, name, action],
            )
        audit.record(
            "runbook.run.started",
            run_id,
            {
                "runbook": runbook,
                "path": path,
                "params": params,
                "mode": mode,
                "parent_run": parent_run,
                "incident_id": incident_id,
                "content_sha256": content_digest(
                    runbook,
                    path,
                    source,
                    json.loads(json.dumps(redact(params))),
                    secret_params,
                    mode,
                    audit.actor,
                    parent_run,
                    incident_id,
                ),
                **({"sub_runbooks": pinned} if pinned else {}),
            },
        )
    leases.keeper(db).keep(taken.lease)


def set_run(
    db: sqlite_utils.Database,
    audit: AuditLog | None,
    run_id: str,
    *,
    action: str | None = None,
    details: dict[str, Any] | None = None,
    outcome: str = "ok",
    **fields: Any,
) -> None:
    """Update run fields and (unless ``action`` is None) audit it, atomically."""
    fields["updated_at"] = _now()
    for key in ("measured",):
        if key in fields:
            fields[key] = json.dumps(fields[key])
    if "error" in fields and fields["error"] is not None:
        fields["error"] = redact(str(fields["error"]))
    sets = ", ".join(f"{k} = ?" for k in fields)
    with immediate(db):
        db.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*fields.values(), run_id])
        if action is not None and audit is not None:
            audit.record(action, run_id, {**(details or {}), **_audit_fields(fields)}, outcome)


def _audit_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k in ("status", "error", "phase") and v is not None}


def set_step(
    db: sqlite_utils.Database,
    audit: AuditLog,
    run_id: str,
    phase: str,
    idx: int,
    *,
    action: str,
    details: dict[str, Any] | None = None,
    outcome: str = "ok",
    expect: Iterable[str] | None = None,
    **fields: Any,
) -> None:
    """Update one step row and audit the transition in the same transaction.

    With ``expect`` the update is a compare-and-set: it happens only if the step is in
    one of those states *and* this process still owns the run (and its lease); otherwise
    :class:`StepClaimLost` is raised and nothing changes."""
    if "output" in fields:
        fields["output"], fields["truncated"] = bound_output(redact(fields["output"] or ""))
    for key in ("rendered", "result"):
        if key in fields:
            fields[key] = json.dumps(redact(fields[key]), default=str)
    if fields.get("error") is not None:
        fields["error"] = redact(str(fields["error"]))
    sets = ", ".join(f"{k} = ?" for k in fields)
    with immediate(db):
        row = db.execute(
            "SELECT step_id, status FROM run_steps WHERE run_id = ? AND phase = ? AND idx = ?",
            [run_id, phase, idx],
        ).fetchone()
        where = "run_id = ? AND phase = ? AND idx = ?"
        args: list[Any] = [run_id, phase, idx]
        if expect is not None:
            wanted = list(expect)
            # The run row names this process as owner, and this process still holds the
            # run's lease (a pid and host name alone can repeat: containers).
            held = leases.keeper(db).holds(run_lease(run_id))
            where += (
                f" AND status IN ({', '.join('?' * len(wanted))}) AND EXISTS (SELECT 1 FROM "
                "runs WHERE id = ? AND status = 'running' AND pid = ? AND hostname = ?) "
                "AND EXISTS (SELECT 1 FROM leases WHERE name = ? AND token = ?)"
            )
            args += [
                *wanted,
                run_id,
                os.getpid(),
                socket.gethostname(),
                run_lease(run_id),
                held.token if held is not None else "",
            ]
        cur = db.execute(f"UPDATE run_steps SET {sets} WHERE {where}", [*fields.values(), *args])
        if expect is not None and cur.rowcount != 1:
            run = db.execute(
                "SELECT status, pid, hostname, owner, claimed_at FROM runs WHERE id = ?", [run_id]
            ).fetchone()
            raise StepClaimLost(
                f"step {row[0] if row else idx} of run {run_id} is {row[1] if row else '?'}"
                f" and the run is {run[0]} (pid {run[1]} on {run[2]}, {run[3]}, "
                f"since {run[4]}); this process no longer owns it and did not start the step"
                if run
                else f"run {run_id} is gone"
            )
        db.execute("UPDATE runs SET updated_at = ? WHERE id = ?", [_now(), run_id])
        audit.record(
            action,
            f"{run_id}/{row[0] if row else idx}",
            {
                "phase": phase,
                **(details or {}),
                **{k: v for k, v in fields.items() if k in ("status", "error", "attempts")},
            },
            outcome,
        )


def run_owner(db: sqlite_utils.Database, run_id: str) -> Lease | None:
    """The live lease of the process that executes ``run_id`` (None: no live owner)."""
    lease = leases.get(db, run_lease(run_id))
    if lease is None or lease.stale_reason(leases.db_now(db)) is not None:
        return None
    return lease


def release_run(db: sqlite_utils.Database, run_id: str) -> None:
    """This process no longer executes ``run_id``: stop heartbeating and drop its lease
    (nothing happens if another process holds it now)."""
    keeper = leases.keeper(db)
    lease = keeper.holds(run_lease(run_id))
    if lease is not None:
        keeper.drop(lease.name, lease.token)
        leases.release(db, lease.name, lease.token)


def claim_run(
    db: sqlite_utils.Database,
    audit: AuditLog,
    run_id: str,
    *,
    allowed: Iterable[str],
    verb: str,
    action: str,
    details: dict[str, Any] | None = None,
    lease_seconds: float = leases.DEFAULT_SECONDS,
    **fields: Any,
) -> RunRow:
    """Make this process the run's only owner: take the run's lease (compare-and-set) and
    record the owner, in one transaction.

    Refused (:class:`RunClaimed`) while another holder's lease is live, or when the
    run's status is not in ``allowed``. A run whose owner died (``kill -9``, its host
    lost) can be claimed once its lease is stale: at once on the owner's host, after the
    lease expired from anywhere (the takeover is audited)."""
    with immediate(db):
        run = get_run(db, run_id)
        mine = run.pid == os.getpid() and run.hostname == socket.gethostname()
        if run.status not in set(allowed) and not (run.status == "running" and not mine):
            raise RunClaimed(f"run {run.id} is {run.status}; it cannot be {verb} now")
        me = Holder.me(audit.actor)
        try:
            taken = leases.acquire(
                db,
                audit,
                run_lease(run.id),
                me,
                seconds=lease_seconds,
                mine=lambda lease: mine and lease.holder.same_process(me),
            )
        except LeaseHeld as exc:
            holder = exc.lease.holder
            raise RunClaimed(
                f"run {run.id} is being {_DOING.get(verb, 'run')} by pid {holder.pid} on "
                f"{holder.host} ({holder.account}) since {run.claimed_at or run.started_at}; "
                f"it cannot be {verb} twice (its lease expires "
                f"{isoformat(exc.lease.expires_at)} unless renewed)"
            ) from None
        now = _now()
        claim = {
            "status": "running",
            "pid": os.getpid(),
            "pid_start": proc_start(os.getpid()),
            "hostname": socket.gethostname(),
            "owner": audit.actor,
            "claimed_at": now,
            **fields,
        }
        set_run(
            db,
            audit,
            run.id,
            action=action,
            details={
                "previous_status": run.status,
                **({"took_over_from": taken.previous.describe()} if taken.previous else {}),
                **(details or {}),
            },
            **claim,
        )
    leases.keeper(db).keep(taken.lease)
    return get_run(db, run.id)


_DOING = {"resumed": "resumed", "rolled back": "rolled back", "aborted": "resumed"}


def get_step(db: sqlite_utils.Database, run_id: str, phase: str, idx: int) -> StepRow:
    """One step row (a run's other steps are not loaded: per-step cost stays flat)."""
    rows = list(
        db.query(
            "SELECT * FROM run_steps WHERE run_id = ? AND phase = ? AND idx = ?",
            [run_id, phase, idx],
        )
    )
    if not rows:
        raise NotFoundError(f"run {run_id} has no step {phase}[{idx}]")
    return _step_row(rows[0])


def _step_row(r: dict[str, Any]) -> StepRow:
    r = dict(r)
    r.pop("result_sealed", None)  # read only by sealed_results()
    r["rendered"] = json.loads(r["rendered"]) if r["rendered"] else None
    r["result"] = json.loads(r["result"]) if r["result"] else None
    r["truncated"] = bool(r["truncated"])
    return StepRow(**r)


def sealed_results(db: sqlite_utils.Database, run_id: str) -> dict[tuple[str, int], bytes]:
    """The encrypted real results of a run's steps that held secrets (see vault)."""
    rows = db.execute(
        "SELECT phase, idx, result_sealed FROM run_steps "
        "WHERE run_id = ? AND result_sealed IS NOT NULL",
        [run_id],
    ).fetchall()
    return {(ph, i): sealed for ph, i, sealed in rows}


def get_run(db: sqlite_utils.Database, run_id: str) -> RunRow:
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        # Accept a unique prefix, as people copy short ids.
        like = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = list(
            db.query(
                "SELECT * FROM runs WHERE lower(id) LIKE lower(?) ESCAPE '\\' LIMIT 2",
                [like + "%"],
            )
        )
        if len(rows) != 1:
            raise NotFoundError(f"no run with id {run_id!r} (see `opsconsole runbook runs`)")
    r = dict(rows[0])
    r["params"] = json.loads(r["params"])
    r["secret_params"] = json.loads(r["secret_params"])
    r["measured"] = json.loads(r["measured"])
    return RunRow(**r)


def get_steps(db: sqlite_utils.Database, run_id: str) -> list[StepRow]:
    return [
        _step_row(r)
        for r in db.query(
            "SELECT * FROM run_steps WHERE run_id = ? ORDER BY phase = 'rollback', idx", [run_id]
        )
    ]


def list_runs(
    db: sqlite_utils.Database, *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    sql = (
        "SELECT id, runbook, status, mode, actor, parent_run, incident_id, started_at, "
        "finished_at, error, measured FROM runs"
    )
    args: list[Any] = []
    if status:
        sql += " WHERE status = ?"
        args.append(status)
    sql += " ORDER BY started_at DESC LIMIT ?"
    args.append(limit)
    rows = [dict(r) for r in db.query(sql, args)]
    for r in rows:
        r["measured"] = json.loads(r["measured"])
    return rows
