"""``opsconsole db``: set up a shared PostgreSQL store (roles, grants), migrate, status."""

from __future__ import annotations

from typing import Annotated

import typer

from opsconsole.cli.state import print_json, state

app = typer.Typer(
    help="The store: set up team mode on PostgreSQL (db init), migrate, status.",
    no_args_is_help=True,
)

Prefix = Annotated[
    str, typer.Option("--prefix", help="Prefix of the role names (PREFIX_owner, _writer, ...).")
]


def _location() -> str:
    from opsconsole.store import describe

    return describe(state.database_path())


def _postgres_url() -> str | None:
    from opsconsole.store import is_postgres_url

    location = state.database_path()
    return str(location) if is_postgres_url(location) else None


@app.command("init")
def init(
    person: Annotated[
        list[str] | None,
        typer.Option("--person", help="A person's login role, granted the writer role (repeat)."),
    ] = None,
    auditor: Annotated[
        list[str] | None,
        typer.Option("--auditor", help="An auditor's login role, read-only (repeat)."),
    ] = None,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Run it through --db / OPSCONSOLE_DB as a superuser, create the tables as "
            "the owner role and grant them (default: print the SQL).",
        ),
    ] = False,
    database: Annotated[
        str | None,
        typer.Option("--database", help="Database name (default: the one in the URL)."),
    ] = None,
    prefix: Prefix = "opsconsole",
) -> None:
    """Print (or --apply) the SQL for team mode: owner, writer, auditor and scheduler roles,
    one login role per person, the database and its grants. No passwords in it."""
    from urllib.parse import urlsplit

    from opsconsole.dbadmin import RoleNames, apply_init, check_name, init_script
    from opsconsole.errors import ExitCode, OpsError

    names = RoleNames(check_name(prefix, "prefix"))
    url = _postgres_url()
    if database is None and url is not None:
        from psycopg.conninfo import conninfo_to_dict

        database = str(conninfo_to_dict(url).get("dbname") or "") or None
    database = check_name(database or "opsconsole", "database")
    if not apply:
        host = urlsplit(url).hostname if url else None
        typer.echo(init_script(names, database, person or [], auditor or [], host=host or "HOST"))
        return
    if url is None:
        raise OpsError(
            "db init --apply needs a PostgreSQL URL of a superuser in --db or OPSCONSOLE_DB "
            "(e.g. postgresql://postgres@db.example/opsconsole)",
            exit_code=ExitCode.USAGE,
        )
    from opsconsole.capabilities import register_all

    register_all()
    applied = apply_init(url, names, database, person or [], auditor or [])
    typer.echo(
        f"database {database}: roles {names.owner}, {names.writer}, {names.auditor}, "
        f"{names.scheduler}" + "".join(f", {p}" for p in [*(person or []), *(auditor or [])])
    )
    typer.echo(f"applied {len(applied)} migration(s) as {names.owner}; grants applied")
    typer.echo("set each login role's password with psql's \\password NAME (or use certificates)")


@app.command("migrate")
def migrate(prefix: Prefix = "opsconsole") -> None:
    """Apply pending migrations (as the owner role on PostgreSQL) and print them; then
    re-apply the team-mode grants to the tables."""
    from opsconsole.capabilities import register_all
    from opsconsole.dbadmin import RoleNames, apply_grants, check_name
    from opsconsole.errors import ExitCode, OpsError, StoreError
    from opsconsole.store import open_db, pending_migrations

    names = RoleNames(check_name(prefix, "prefix"))
    register_all()
    location = state.database_path()
    db = open_db(location, migrate=False)
    pending = pending_migrations(db)
    who = _who(db)
    db.close()
    try:
        db = open_db(location)
        granted = apply_grants(db, names)
    except StoreError as exc:
        if "permission denied" in str(exc) or "must be owner" in str(exc):
            raise OpsError(
                f"{who} may not change the schema of {_location()} ({exc}); run "
                f"`opsconsole db migrate` as the owner role ({names.owner})",
                exit_code=ExitCode.DENIED,
            ) from None
        raise
    for set_name, name in pending:
        typer.echo(f"applied {set_name}/{name}")
    note = "; grants for the writer and auditor roles applied" if granted else ""
    if not granted and db.engine == "postgresql":
        note = f"; grants not applied ({who} does not own the tables, or no `db init` roles)"
    typer.echo(f"{len(pending)} migration(s) applied to {_location()}{note}")


def _who(db: object) -> str:
    from opsconsole.identity import current

    return current(db=db).name


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Engine, location (no password), migrations applied and pending, who this connection
    is (session user and its roles), server version and TLS."""
    from opsconsole.capabilities import register_all
    from opsconsole.dbadmin import status as db_status
    from opsconsole.store import open_db

    register_all()
    db = open_db(state.database_path(), migrate=False)
    try:
        data = db_status(db)
    finally:
        db.close()
    if as_json:
        print_json(data)
        return
    typer.echo(f"engine: {data['engine']} ({data['server_version']})")
    typer.echo(f"location: {data['location']}")
    if data["engine"] == "postgresql":
        typer.echo(f"server: {data['server']}, database {data['database']}")
        tls = (
            f"yes ({data['tls_version']}, {data['tls_cipher']})"
            if data["tls"]
            else "no - use sslmode=verify-full in the URL"
        )
        typer.echo(f"tls: {tls}")
        guards = "bound by" if data["guards_bind_this_role"] else "exempt from (owner/superuser)"
        typer.echo(
            f"session user: {data['session_user']} (member of: "
            f"{', '.join(data['roles']) or '-'}; {guards} the database's identity guards)"
        )
    else:
        typer.echo(f"account: {data['session_user']} (groups: {', '.join(data['roles']) or '-'})")
    typer.echo(
        f"schema: {data['migrations_applied']} migration(s) applied, last "
        f"{data['last_migration'] or '-'}; pending: {len(data['pending'])}"
    )
    for name in data["pending"]:
        typer.echo(f"  pending {name} (run `opsconsole db migrate`)")
