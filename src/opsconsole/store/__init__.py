"""The store: one database, two engines, and the migrations the capabilities register.

**SQLite** is the embedded default: every process (CLI, TUI, scheduler, serve) on a host
opens the same file. WAL mode lets readers run beside a writer; the busy timeout makes
concurrent writers wait instead of failing with "database is locked". **PostgreSQL**
(``OPSCONSOLE_DB=postgresql://...``) is team mode, shared by every workstation and
bastion (:mod:`opsconsole.store.postgres`).

Capabilities get a database object with the same small surface on both engines
(``execute``, ``query``, ``conn``, ``engine``, ``location``) and write their writes inside
:func:`immediate`. Each capability registers its own numbered migrations
(:class:`~opsconsole.store.migrations.Migrations`); the core knows none of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils
import sqlite_utils.migrations

from opsconsole.errors import OpsError, StoreError
from opsconsole.paths import default_db_path
from opsconsole.store.migrations import REGISTRY, Migrations
from opsconsole.store.postgres import PgDatabase, display_url, is_postgres_url

__all__ = [
    "BUSY_TIMEOUT_MS",
    "Database",
    "Location",
    "Migrations",
    "SqliteDatabase",
    "append_only",
    "applied_migrations",
    "describe",
    "immediate",
    "is_postgres_url",
    "open_db",
    "open_readonly",
    "pipelined",
    "resolve_db_path",
    "share_with_group",
    "store_failure",
]

BUSY_TIMEOUT_MS = 30_000

# A SQLite file or a PostgreSQL URL (team mode).
Location = Path | str


class SqliteDatabase(sqlite_utils.Database):
    """sqlite-utils' database with the store's engine-neutral additions."""

    engine = "sqlite"
    location: Path

    def begin_write(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def table_names(self) -> list[str]:  # type: ignore[override]
        return [r[0] for r in self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


# What the capabilities are handed; both engines offer the same surface.
Database = SqliteDatabase | PgDatabase


def as_location(value: str | Path) -> Location:
    """A PostgreSQL URL stays a string; anything else is a SQLite path."""
    return value if is_postgres_url(value) else Path(value)


def resolve_db_path(
    explicit: Location | None = None, configured: Location | None = None
) -> Location:
    """--db wins, then OPSCONSOLE_DB, then the config's ``database``, then the XDG default.

    Each may be a SQLite path or a ``postgresql://`` URL."""
    import os

    if explicit is not None:
        return as_location(explicit)
    if os.environ.get("OPSCONSOLE_DB"):
        return as_location(os.environ["OPSCONSOLE_DB"])
    if configured is not None:
        return as_location(configured)
    return default_db_path()


def describe(location: Location) -> str:
    """The location for messages: a path, or a URL without its password."""
    return display_url(location) if isinstance(location, str) else str(location)


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
    path: Location | None = None, *, migrate: bool = True, group: str | None = None
) -> Database:
    """Open (creating if needed) the database and bring the schema of every capability
    registered so far up to date.

    ``group``: a shared host's group (settings ``shared_group``), see :func:`share_with_group`."""
    if is_postgres_url(path):
        from opsconsole.store.postgres import open_pg

        pg = open_pg(str(path))
        if migrate:
            _migrate_pg(pg)
        return pg
    path = Path(path) if path else default_db_path()
    try:
        if group:
            share_with_group(path, group)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path)
    except (OSError, sqlite3.Error) as exc:
        failure = store_failure(exc, path)
        raise (failure or OpsError(f"cannot open database {path}: {exc}")) from None
    db = SqliteDatabase(conn)
    db.location = path
    if migrate:
        _migrate(db, path)
    if group:  # files created just now (database, WAL, SHM, lock) as well
        share_with_group(path, group)
    return db


def open_readonly(path: Location) -> Database:
    """Open an existing database for reading only, never creating, migrating or writing
    anything - how an auditor opens the copy of the evidence they were handed (the file
    may sit on read-only media or carry ``chattr +i``). On PostgreSQL: a session whose
    transactions are read-only."""
    if isinstance(path, str):
        from opsconsole.store.postgres import open_pg

        pg = open_pg(path)
        pg.execute("SET default_transaction_read_only = on")
        return pg
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
    db = SqliteDatabase(conn)
    db.location = path
    return db


def _quote_uri(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))


def _sqlite_sets() -> list[sqlite_utils.migrations.Migrations]:
    """The registered sets as sqlite-utils sets: their ``_sqlite_migrations`` table keeps
    the history of databases made before the store had two engines."""
    out = []
    for mine in REGISTRY.values():
        theirs = sqlite_utils.migrations.Migrations(mine.name)
        for step in mine.steps:
            theirs(name=step.name)(step.fn)
        out.append(theirs)
    return out


def applied_migrations(db: Database) -> list[tuple[str, str, str]]:
    """(set, name, applied_at) of every migration this database has applied."""
    table = "opsconsole_migrations" if db.engine == "postgresql" else "_sqlite_migrations"
    if table not in db.table_names():
        return []
    return [
        (r[0], r[1], str(r[2]))
        for r in db.execute(f"SELECT migration_set, name, applied_at FROM {table} ORDER BY id")
    ]


def pending_migrations(db: Database) -> list[tuple[str, str]]:
    done = {(s, n) for s, n, _ in applied_migrations(db)}
    return [
        (m.name, step.name)
        for m in REGISTRY.values()
        for step in m.steps
        if (m.name, step.name) not in done
    ]


def _migrate_pg(db: PgDatabase) -> None:
    """Apply pending migrations, each in its own transaction with its record, under a
    session advisory lock so that two first starts on two hosts don't race."""
    from opsconsole.store.postgres import MIGRATE_LOCK
    from opsconsole.timeutil import isoformat, utcnow

    if "opsconsole_migrations" in db.table_names() and not pending_migrations(db):
        return
    try:
        db.execute("SELECT pg_advisory_lock(?)", [MIGRATE_LOCK])
    except sqlite3.Error as exc:
        raise (store_failure(exc, describe(db.location)) or StoreError(str(exc))) from None
    if "opsconsole_migrations" in db.table_names() and not _may_migrate(db):
        db.execute("SELECT pg_advisory_unlock(?)", [MIGRATE_LOCK])
        pending = pending_migrations(db)
        if not pending:  # another process applied them while this one waited
            return
        who = db.execute("SELECT session_user").fetchone()[0]
        raise StoreError(
            f"database {describe(db.location)} has {len(pending)} pending migration(s) "
            f"({pending[0][0]}/{pending[0][1]}, ...) that role {who} may not apply: have "
            "the owner role run `opsconsole db migrate`"
        )
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS opsconsole_migrations (id BIGINT GENERATED BY DEFAULT "
            "AS IDENTITY PRIMARY KEY, migration_set TEXT NOT NULL, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL, UNIQUE (migration_set, name))"
        )
        for set_name, name in pending_migrations(db):
            step = next(s for s in REGISTRY[set_name].steps if s.name == name)
            with immediate(db):
                step.fn(db)
                db.execute(
                    "INSERT INTO opsconsole_migrations (migration_set, name, applied_at) "
                    "VALUES (?, ?, ?)",
                    [set_name, name, isoformat(utcnow())],
                )
    except sqlite3.Error as exc:
        failure = store_failure(exc, describe(db.location))
        raise (
            failure or OpsError(f"cannot migrate database {describe(db.location)}: {exc}")
        ) from None
    finally:
        db.execute("SELECT pg_advisory_unlock(?)", [MIGRATE_LOCK])


def _may_migrate(db: PgDatabase) -> bool:
    """Whether this session owns the schema's tables (or is a superuser): the team-mode
    writer roles do not, and must not try to change the schema."""
    row = db.execute(
        "SELECT r.rolsuper OR pg_has_role(session_user, c.relowner, 'MEMBER') "
        "FROM pg_roles r, pg_class c WHERE r.rolname = session_user "
        "AND c.oid = to_regclass('opsconsole_migrations')"
    ).fetchone()
    return bool(row and row[0])


def append_only(db: Database, table: str, message: str) -> None:
    """Triggers that refuse UPDATE and DELETE on ``table`` (the audit log, a timeline).

    Someone with enough rights can drop them; the hash chain and, on PostgreSQL, the
    grants (writers get INSERT only, see ``opsconsole db init``) are the other layers."""
    for op in ("UPDATE", "DELETE"):
        if db.engine == "postgresql":
            db.execute(
                f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger "
                f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{message}'; END $$"
            )
            db.execute(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
            )
            # Default privileges (team mode, `db init`) gave writers UPDATE and DELETE on
            # the new table: take them back from everyone but the owner.
            db.execute(
                "DO $$ DECLARE g text; BEGIN FOR g IN SELECT DISTINCT r.rolname "
                "FROM pg_class c, aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee "
                f"WHERE c.oid = '{table}'::regclass AND a.grantee <> c.relowner "
                "AND a.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE') LOOP "
                f"EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM %I', g); "
                "END LOOP; END $$"
            )
        else:
            db.execute(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )


def _migrate(db: SqliteDatabase, path: Path) -> None:
    sets = _sqlite_sets()
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


def pipelined(db: Database) -> contextlib.AbstractContextManager[None]:
    """On PostgreSQL, one write transaction's statements sent without waiting for each
    answer (see :meth:`PgDatabase.pipelined` for what code may run inside); on SQLite,
    where a statement is a function call, nothing changes."""
    if isinstance(db, PgDatabase):
        return db.pipelined()
    return contextlib.nullcontext()


@contextlib.contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """A write transaction that takes the write lock at BEGIN (or joins the one already
    open): ``BEGIN IMMEDIATE`` on SQLite, a transaction advisory lock on PostgreSQL."""
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    try:
        db.begin_write()
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
