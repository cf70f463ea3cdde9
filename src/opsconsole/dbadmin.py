"""Team mode administration: the roles and grants of a shared PostgreSQL store, and what
``opsconsole db status`` reports.

The roles (names take a prefix, ``opsconsole`` by default):

- ``<prefix>_owner`` owns the database and every table; it runs the migrations. Members
  of it (and superusers) are not bound by the database's identity guards - they could
  drop them - so nobody works day to day as the owner.
- ``<prefix>_writer`` (no login) is what every person and the scheduler are granted:
  SELECT/INSERT/UPDATE/DELETE on the ordinary tables, but only INSERT and SELECT on the
  append-only ones (the audit chain, its checkpoints, incident timelines), so an UPDATE
  or DELETE there fails on the grants even if the refusing triggers were gone.
- one login role per person, member of the writer role: their identity in the audit log
  is that role (``session_user``), proven by their own credentials.
- ``<prefix>_auditor`` (no login) reads everything and writes nothing; auditors log in
  with their own roles, members of it.
- ``<prefix>_scheduler``: the drill scheduler's own login role (a writer).

``ALTER DEFAULT PRIVILEGES`` gives tables created by later migrations the same grants;
the append-only exceptions are re-applied by ``opsconsole db migrate``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsconsole.errors import ExitCode, OpsError

if TYPE_CHECKING:
    from opsconsole.store import Database

__all__ = [
    "APPEND_ONLY",
    "RoleNames",
    "apply_grants",
    "apply_init",
    "grant_statements",
    "init_script",
    "status",
]

# Writers get INSERT and SELECT only on these (and on any table whose UPDATE/DELETE are
# refused by the store's append-only triggers, ``<table>_no_update``).
APPEND_ONLY = ("audit_events", "audit_checkpoints", "incident_events")
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_name(name: str, what: str = "role") -> str:
    """A role or database name as written unquoted in SQL: lower case letters, digits, _."""
    if not _NAME.match(name):
        raise OpsError(
            f"{what} name {name!r}: use lower-case letters, digits and _ (at most 63), "
            "starting with a letter",
            exit_code=ExitCode.USAGE,
        )
    return name


@dataclass(frozen=True)
class RoleNames:
    prefix: str = "opsconsole"

    @property
    def owner(self) -> str:
        return f"{self.prefix}_owner"

    @property
    def writer(self) -> str:
        return f"{self.prefix}_writer"

    @property
    def auditor(self) -> str:
        return f"{self.prefix}_auditor"

    @property
    def scheduler(self) -> str:
        return f"{self.prefix}_scheduler"


def _create_role(name: str, options: str, member_of: str | None = None) -> list[str]:
    out = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') "
        f"THEN CREATE ROLE {name} {options}; END IF; END $$;"
    ]
    if member_of:
        out.append(f"GRANT {member_of} TO {name};")
    return out


def role_statements(
    names: RoleNames, persons: Iterable[str] = (), auditors: Iterable[str] = ()
) -> list[str]:
    """Cluster-level statements (run in any database): the roles and memberships."""
    out: list[str] = []
    out += _create_role(names.owner, "LOGIN")
    out += _create_role(names.writer, "NOLOGIN")
    out += _create_role(names.auditor, "NOLOGIN")
    out += _create_role(names.scheduler, "LOGIN", names.writer)
    for person in persons:
        out += _create_role(check_name(person), "LOGIN", names.writer)
    for person in auditors:
        out += _create_role(check_name(person), "LOGIN", names.auditor)
    return out


def database_statements(names: RoleNames, database: str) -> list[str]:
    """Statements run inside the new database (as a superuser or its owner)."""
    w, a, o = names.writer, names.auditor, names.owner
    return [
        f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;",
        f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {w}, {a};",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        f"GRANT USAGE, CREATE ON SCHEMA public TO {o};",
        f"GRANT USAGE ON SCHEMA public TO {w}, {a};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {w};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {w};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public GRANT SELECT ON TABLES TO {a};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public GRANT SELECT ON SEQUENCES TO {a};",
    ]


def grant_statements(names: RoleNames) -> list[str]:
    """The grants on the tables that exist now; idempotent, run after every migration.

    Writers: full DML on ordinary tables, INSERT and SELECT only on the append-only ones,
    SELECT only on the migration record. Auditors: SELECT only."""
    w, a = names.writer, names.auditor
    listed = ", ".join(f"'{t}'" for t in APPEND_ONLY)
    return [
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {w};",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {w};",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {a};",
        f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {a};",
        "DO $$ DECLARE t text; BEGIN "
        "FOR t IN SELECT c.relname FROM pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' "
        f"AND (c.relname IN ({listed}) OR EXISTS (SELECT 1 FROM pg_trigger g "
        "WHERE g.tgrelid = c.oid AND g.tgname = c.relname || '_no_update')) LOOP "
        f"EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %I FROM {w}', t); "
        "END LOOP; "
        "IF to_regclass('public.opsconsole_migrations') IS NOT NULL THEN "
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.opsconsole_migrations FROM {w}; "
        "END IF; END $$;",
    ]


def init_script(
    names: RoleNames,
    database: str,
    persons: Iterable[str] = (),
    auditors: Iterable[str] = (),
    *,
    host: str = "HOST",
) -> str:
    """The set-up as a psql script, for a superuser to read and run."""
    persons, auditors = list(persons), list(auditors)
    check_name(database, "database")
    lines = [
        "-- opsconsole team mode: roles, database and grants (opsconsole db init).",
        f"-- Run as a superuser: psql -h {host} -U postgres -v ON_ERROR_STOP=1 -f FILE",
        "-- No passwords are in this file: give each login role one with psql's",
        "--   \\password NAME",
        "-- or authenticate with client certificates (hostssl ... cert in pg_hba.conf).",
        "",
        "-- Roles (cluster-wide).",
        *role_statements(names, persons, auditors),
        "",
        "-- The database, owned by the owner role.",
        f"SELECT 'CREATE DATABASE {database} OWNER {names.owner}' "
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{database}')\\gexec",
        f"\\connect {database}",
        *database_statements(names, database),
        "",
        "-- Grants on the tables that exist (none yet on a new database). After this script:",
        f"--   OPSCONSOLE_DB=postgresql://{names.owner}@{host}/{database}?sslmode=verify-full \\",
        "--     opsconsole db migrate",
        "-- creates the tables as the owner and applies these grants again.",
        *grant_statements(names),
        "",
    ]
    return "\n".join(lines)


def _pg_error(exc: Exception, where: str) -> OpsError:
    from psycopg import errors

    from opsconsole.store.postgres import display_url

    text = str(getattr(getattr(exc, "diag", None), "message_primary", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, errors.InsufficientPrivilege):
        return OpsError(
            f"db init --apply through {display_url(where)}: {first}; it needs a superuser "
            "(or print the SQL with `opsconsole db init` for one to run)",
            exit_code=ExitCode.DENIED,
        )
    return OpsError(f"db init --apply through {display_url(where)}: {first}")


def apply_init(
    admin_url: str,
    names: RoleNames,
    database: str,
    persons: Iterable[str] = (),
    auditors: Iterable[str] = (),
) -> list[tuple[str, str]]:
    """Run the set-up through ``admin_url`` (a superuser, or a role with CREATEROLE and
    CREATEDB), create the tables as the owner role and grant them; returns the migrations
    applied."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from opsconsole.store import pending_migrations
    from opsconsole.store.postgres import PgDatabase, _adapt, open_pg

    check_name(database, "database")
    admin = open_pg(make_conninfo(admin_url, dbname="postgres"))
    try:
        for statement in role_statements(names, persons, auditors):
            admin.conn.raw.execute(statement)  # type: ignore[arg-type]
        exists = admin.conn.raw.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database]
        ).fetchone()
        if not exists:
            admin.conn.raw.execute(f"CREATE DATABASE {database} OWNER {names.owner}")  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise _pg_error(exc, admin_url) from None
    finally:
        admin.close()
    target = make_conninfo(admin_url, dbname=database)
    raw = open_pg(target).conn.raw
    try:
        for statement in database_statements(names, database):
            raw.execute(statement)  # type: ignore[arg-type]
        # The tables belong to the owner role: migrate as it (session_user stays the
        # administrator, which the identity guards let through).
        raw.execute(f"SET ROLE {names.owner}")  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raw.close()
        raise _pg_error(exc, target) from None
    _adapt(raw)
    db = PgDatabase(raw, target)
    try:
        before = pending_migrations(db)
        _migrate(db)
        apply_grants(db, names)
        return before
    finally:
        db.close()


def _migrate(db: Database) -> None:
    # On this very connection (it has SET ROLE to the owner), not a new one.
    from opsconsole.store import _migrate_pg

    _migrate_pg(db)  # type: ignore[arg-type]


def apply_grants(db: Database, names: RoleNames) -> bool:
    """Re-apply the table grants if the writer role exists and this session owns the
    tables (False otherwise: a database set up by hand, without ``db init``, or a
    person's role, whose GRANTs would only be warnings)."""
    from opsconsole.identity import session

    dbs = session(db)
    if dbs is None or not dbs.privileged:
        return False
    row = db.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", [names.writer]).fetchone()
    if row is None:
        return False
    for statement in grant_statements(names):
        db.execute(statement.rstrip(";"))
    return True


def status(db: Database) -> dict[str, Any]:
    """Engine, location, migrations, connection identity, server and TLS."""
    import sqlite3

    from opsconsole.identity import current, session
    from opsconsole.store import applied_migrations, describe, pending_migrations

    applied = applied_migrations(db)
    pending = pending_migrations(db)
    out: dict[str, Any] = {
        "engine": db.engine,
        "location": describe(db.location),
        "migrations_applied": len(applied),
        "last_migration": f"{applied[-1][0]}/{applied[-1][1]}" if applied else None,
        "pending": [f"{s}/{n}" for s, n in pending],
    }
    if db.engine == "postgresql":
        dbs = session(db)
        assert dbs is not None
        raw = db.conn.raw  # type: ignore[union-attr]
        info = raw.info
        ssl = db.execute(
            "SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
        out.update(
            {
                "session_user": dbs.user,
                "roles": sorted(dbs.roles - {dbs.user}),
                "guards_bind_this_role": not dbs.privileged,
                "server_version": db.execute("SHOW server_version").fetchone()[0],
                "server": f"{info.host} port {info.port}"
                + (" (Unix socket)" if info.host.startswith("/") else ""),
                "database": info.dbname,
                "tls": bool(ssl and ssl[0]),
                "tls_version": ssl[1] if ssl and ssl[0] else None,
                "tls_cipher": ssl[2] if ssl and ssl[0] else None,
            }
        )
    else:
        me = current()
        out.update(
            {
                "session_user": me.name,
                "roles": sorted(me.groups),
                "server_version": f"SQLite {sqlite3.sqlite_version}",
                "tls": None,
            }
        )
    return out
