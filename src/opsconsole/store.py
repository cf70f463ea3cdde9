"""The one SQLite database: where it lives, how it is opened, and its migrations.

Every process (CLI, TUI, scheduler) opens the same file. WAL mode lets readers run
beside a writer; the busy timeout makes concurrent writers wait instead of failing with
"database is locked". Schema changes are numbered migrations (sqlite-utils
``Migrations``), one set per capability, applied in order on open.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from opsconsole.errors import OpsError, StoreError
from opsconsole.paths import default_db_path

__all__ = [
    "BUSY_TIMEOUT_MS",
    "immediate",
    "migrations",
    "open_db",
    "open_readonly",
    "resolve_db_path",
    "share_with_group",
    "store_failure",
]

BUSY_TIMEOUT_MS = 30_000

migrations = Migrations("opsconsole.core")

# Migration sets of each capability, applied in this order. Each module defines a
# module-level ``migrations = Migrations("opsconsole.<name>")``.
MIGRATION_MODULES: list[str] = [
    "opsconsole.store",
    "opsconsole.incidents.store",
    "opsconsole.drills.store",
    "opsconsole.health.storage",
    "opsconsole.runbooks.state",
    "opsconsole.outbox",
    "opsconsole.incidents.alertgroups",
    "opsconsole.rules.state",
]


@migrations(name="0001_audit_events")
def _m0001(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE audit_events (
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            actor TEXT NOT NULL,
            interface TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            details TEXT NOT NULL DEFAULT '{}',
            outcome TEXT NOT NULL DEFAULT 'ok',
            alg TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX audit_events_ts ON audit_events(ts)")
    db.execute("CREATE INDEX audit_events_action ON audit_events(action)")
    # The log is append-only: refuse edits and deletions at the database level. Someone
    # with write access can drop the triggers; the hash chain catches that.
    db.execute(
        """
        CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
        """
    )
    db.execute(
        """
        CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
        """
    )


def resolve_db_path(explicit: Path | None = None, configured: Path | None = None) -> Path:
    """--db wins, then OPSCONSOLE_DB, then the config's ``database``, then the XDG default."""
    import os

    if explicit is not None:
        return explicit
    if os.environ.get("OPSCONSOLE_DB"):
        return Path(os.environ["OPSCONSOLE_DB"])
    if configured is not None:
        return configured
    return default_db_path()


@migrations(name="0002_audit_checkpoints")
def _m0002(db: sqlite_utils.Database) -> None:
    # The checkpoints this database wrote (the witnesses hold the copies that count):
    # chains each new checkpoint to the previous one, and tells a database whose tail
    # was cut (it knows a checkpoint beyond its head) from an older copy put back.
    db.execute(
        """
        CREATE TABLE audit_checkpoints (
            number INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL,
            digest TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )


def store_failure(exc: BaseException, path: Path | str | None = None) -> StoreError | None:
    """The one-line :class:`StoreError` (exit 5) for a storage failure, or None if ``exc``
    is not one (a constraint violation or a programming error is a bug, not the disk).

    Read-only files and mounts, ``chattr +i``, a full disk, a lock held past the busy
    timeout and I/O errors all end here, from the store layer and from the CLI's
    top-level handler alike, so every command fails the same way.
    """
    import errno

    where = f" {path}" if path else ""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        text = str(exc)
        low = text.lower()
        if "readonly" in low or "read-only" in low or "read only" in low:
            why = "is read-only (file mode, mount or immutable attribute)"
        elif "full" in low:
            why = "cannot grow: the disk is full"
        elif "locked" in low or "busy" in low:
            why = f"stayed locked by another process past the {BUSY_TIMEOUT_MS // 1000} s timeout"
        elif "disk i/o error" in low:
            why = "could not be written (disk I/O error: a full or failing disk)"
        elif "no such table" in low:
            why = f"is missing a table ({text}): restore it or run `opsconsole audit verify`"
        else:
            why = f"failed: {text}"
        return StoreError(f"database{where} {why}; nothing was changed")
    if isinstance(exc, OSError) and exc.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EIO,
    ):
        name = f" {exc.filename}" if exc.filename else where
        return StoreError(f"cannot write{name}: {exc.strerror or exc}; nothing was changed")
    return None


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN ourselves, so a transaction is exactly as long
    # as we say, and BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlocks).
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _all_migration_sets() -> list[Migrations]:
    sets = []
    for name in MIGRATION_MODULES:
        module = importlib.import_module(name)
        sets.append(module.migrations)
    return sets


def share_with_group(path: Path, group: str) -> None:
    """The shared-host (bastion) set-up: the database directory and every file in it
    (database, WAL, SHM, lock files) group-writable for ``group``.

    The directory gets mode 2770 (setgid: new files inherit the group) and the process
    umask becomes 007. SQLite creates the -wal and -shm files with the database file's
    own mode, so a 0660 database gives 0660 companions. Files owned by another account
    are left as they are (only their owner or root may change them)."""
    import grp
    import os

    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise OpsError(
            f"settings shared_group: no OS group {group!r} (create it with `groupadd {group}`)",
            exit_code=3,
        ) from None
    os.umask(0o007)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        targets = [directory, *(p for p in directory.glob(path.name + "*") if p.is_file())]
        for target in targets:
            st = target.stat()
            if st.st_uid != os.geteuid() and os.geteuid() != 0:
                continue
            if st.st_gid != gid:
                os.chown(target, -1, gid)
            mode = 0o2770 if target.is_dir() else 0o660
            if (st.st_mode & 0o7777) | mode != st.st_mode & 0o7777:
                os.chmod(target, (st.st_mode & 0o7777) | mode)
    except OSError as exc:
        raise OpsError(f"cannot share {directory} with group {group}: {exc}") from None


def open_db(
    path: Path | None = None, *, migrate: bool = True, group: str | None = None
) -> sqlite_utils.Database:
    """Open (creating if needed) the database and bring its schema up to date.

    ``group``: a shared host's group (settings ``shared_group``), see :func:`share_with_group`."""
    path = path or default_db_path()
    try:
        if group:
            share_with_group(path, group)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path)
    except (OSError, sqlite3.Error) as exc:
        failure = store_failure(exc, path)
        raise (failure or OpsError(f"cannot open database {path}: {exc}")) from None
    db = sqlite_utils.Database(conn)
    if migrate:
        _migrate(db, path)
    if group:  # files created just now (database, WAL, SHM, lock) as well
        share_with_group(path, group)
    return db


def open_readonly(path: Path) -> sqlite_utils.Database:
    """Open an existing database for reading only, never creating, migrating or writing
    anything - how an auditor opens the copy of the evidence they were handed (the file
    may sit on read-only media or carry ``chattr +i``)."""
    if not path.is_file():
        raise OpsError(f"no database at {path}", exit_code=4)
    try:
        # immutable=1: no locks, no -wal/-shm files created (a read-only directory works).
        # A live database with an un-checkpointed WAL is read through mode=ro instead.
        wal = path.with_name(path.name + "-wal")
        flags = "mode=ro" if wal.exists() and wal.stat().st_size else "mode=ro&immutable=1"
        uri = f"file:{_quote_uri(path)}?{flags}"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise OpsError(f"cannot read database {path}: {exc}") from None
    return sqlite_utils.Database(conn)


def _quote_uri(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))


def _migrate(db: sqlite_utils.Database, path: Path) -> None:
    sets = _all_migration_sets()
    if not any(m.pending(db) for m in sets):
        return
    # Two processes starting at once must not both apply a migration.
    lock_path = path.with_name(path.name + ".migrate.lock")
    try:
        lock = open(lock_path, "a+")  # noqa: SIM115 - released in the finally below
    except OSError as exc:
        raise (store_failure(exc, path) or OpsError(f"cannot migrate {path}: {exc}")) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for m in sets:
                m.apply(db)
        except sqlite3.Error as exc:
            failure = store_failure(exc, path)
            raise (failure or OpsError(f"cannot migrate database {path}: {exc}")) from None
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A write transaction that takes the lock at BEGIN (or joins the one already open)."""
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise (store_failure(exc) or StoreError(f"database is not writable ({exc})")) from None
    try:
        yield db
    except BaseException as exc:
        # An error such as SQLITE_FULL may already have ended the transaction.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        failure = store_failure(exc) if isinstance(exc, sqlite3.Error) else None
        if failure is not None:
            raise failure from None
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise (store_failure(exc) or StoreError(f"commit failed: {exc}")) from None
