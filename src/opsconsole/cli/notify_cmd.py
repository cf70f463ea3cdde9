"""``opsconsole notify``: the notification outbox - list messages, retry a failed one."""

from __future__ import annotations

from typing import Annotated

import typer

from opsconsole.cli.state import console, print_json, print_table, state

app = typer.Typer(
    help="Notification outbox: what was sent, what failed, retry.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("list")
def list_(
    failed: Annotated[
        bool, typer.Option("--failed", help="Only dead messages and ones being retried.")
    ] = False,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, sent, dead or skipped.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest first).", min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Outbox messages, newest first, with tries and the last error."""
    from opsconsole import outbox

    if status is not None and status not in ("pending", "sent", "dead", "skipped"):
        raise typer.BadParameter(
            f"{status!r} is not a status; use pending, sent, dead or skipped",
            param_hint="--status",
        )
    items = outbox.list_messages(state.db(), failed=failed, status=status, limit=limit)
    if as_json:
        print_json([m.to_dict() for m in items])
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("id", "created (UTC)", "event", "subject", "status", "tries", "sent to", "error"):
        table.add_column(col, overflow="fold")
    for m in items:
        table.add_row(
            str(m.id),
            m.created_at[:19],
            m.event,
            m.subject,
            m.status,
            str(m.attempts),
            ", ".join(m.delivered),
            (m.last_error or "")[:80],
        )
    print_table(table, keep=("id", "created (UTC)", "event", "subject", "status", "tries"))
    if not items:
        console().print("no messages" + (" failed" if failed else ""))


@app.command("retry")
def retry(
    message_id: Annotated[int, typer.Argument(help="Message id (see `notify list --failed`).")],
) -> None:
    """Queue a dead message again and try to send it now (audited).

    Exits 0 when sent; 1 when it failed again (it stays queued for `serve`'s worker)."""
    import asyncio

    from opsconsole import outbox
    from opsconsole.delivery import Deliverer

    db = state.db()
    audit = state.audit()
    msg = outbox.requeue(db, audit, message_id)
    deliverer = Deliverer(db, audit, state.config())
    status = asyncio.run(deliverer.deliver(msg.id, attempts=1))
    final = outbox.get(db, msg.id)
    if status == "sent":
        typer.echo(f"message {msg.id} sent ({', '.join(final.delivered)})")
        return
    typer.echo(
        f"message {msg.id} not sent: {final.last_error or status}; it stays queued "
        "(`opsconsole serve` keeps retrying)",
        err=True,
    )
    raise typer.Exit(1)


@app.command("test")
def test(
    channel: Annotated[str, typer.Argument(help="Channel name from settings.yaml.")],
    text: Annotated[
        str, typer.Option("--text", help="Message text.")
    ] = "opsconsole test message: this channel works",
) -> None:
    """Send one test message straight to a channel (not queued; audited). Exit 1 if it fails."""
    import asyncio

    from opsconsole.errors import NotFoundError
    from opsconsole.notify import DeliveryFailed, channel_secret, send
    from opsconsole.outbox import Message
    from opsconsole.timeutil import isoformat, utcnow

    config = state.config()
    found = [c for c in config.settings.notifications.channels if c.name == channel]
    if not found:
        known = ", ".join(c.name for c in config.settings.notifications.channels) or "none"
        raise NotFoundError(f"no channel {channel!r} in settings.yaml (known: {known})")
    ch = found[0]
    now = isoformat(utcnow())
    msg = Message(0, now, "notify.test", "test", "opsconsole test", text, {}, "pending", 0, now)
    try:
        asyncio.run(send(ch, msg, channel_secret(ch, config)))
    except DeliveryFailed as exc:
        state.record("notify.test", channel, {"error": str(exc)}, "failed")
        typer.echo(f"{channel}: not delivered: {exc}", err=True)
        raise typer.Exit(1) from None
    state.record("notify.test", channel, {})
    typer.echo(f"{channel}: delivered")
