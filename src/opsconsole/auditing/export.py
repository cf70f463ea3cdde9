"""Querying and exporting the audit log (filters shared by ``audit list``, ``audit
export`` and evidence packs)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlite_utils

from opsconsole.audit import _FIELDS
from opsconsole.timeutil import isoformat

__all__ = ["PAGE", "chain_range", "export", "in_pages", "query"]

PAGE = 5000  # rows per read when walking the whole log

_ALL = "seq, ts, actor, interface, action, target, details, outcome, alg, prev_hash, hash"


def _where(
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
    target: str | None,
    after_seq: int | None = None,
    before_seq: int | None = None,
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if after_seq is not None:
        where.append("seq > ?")
        params.append(after_seq)
    if before_seq is not None:
        where.append("seq < ?")
        params.append(before_seq)
    if since is not None:
        where.append("ts >= ?")
        params.append(isoformat(since))
    if until is not None:
        where.append("ts <= ?")
        params.append(isoformat(until))
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if action:
        where.append("lower(action) LIKE lower(?) ESCAPE '\\'")
        params.append(_prefix_like(action))
    if target:
        where.append("lower(target) LIKE lower(?) ESCAPE '\\'")
        params.append(_prefix_like(target))
    return (" WHERE " + " AND ".join(where)) if where else "", params


def _select(columns: str, where: str, limit: int | None, newest_first: bool) -> str:
    sql = f"SELECT {columns} FROM audit_events{where}"
    sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
    if limit:
        if not newest_first:
            newest = sql.replace("ORDER BY seq", "ORDER BY seq DESC")
            sql = f"SELECT * FROM ({newest} LIMIT {int(limit)}) AS newest ORDER BY seq"
        else:
            sql += f" LIMIT {int(limit)}"
    return sql


def query(
    db: sqlite_utils.Database,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int | None = None,
    newest_first: bool = False,
    with_hashes: bool = False,
    after_seq: int | None = None,
    before_seq: int | None = None,
) -> list[dict[str, Any]]:
    """Events matching every given filter. ``action`` and ``target`` match a prefix,
    ignoring case on both engines (``runbook.`` finds every runbook event); a trailing
    ``*`` is allowed too. ``after_seq``/``before_seq`` page through the log (the console
    loads what it shows, and then only what is new)."""
    where, params = _where(since, until, actor, action, target, after_seq, before_seq)
    cols = _ALL if with_hashes else "seq, ts, actor, interface, action, target, details, outcome"
    rows = [dict(r) for r in db.query(_select(cols, where, limit, newest_first), params)]
    for r in rows:
        r["details"] = json.loads(r["details"])
    return rows


def _prefix_like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.removesuffix("*") + "%"


def _raw_rows(db: sqlite_utils.Database, sql: str, params: list[Any]) -> Iterator[dict[str, Any]]:
    cur = db.execute(sql, params)
    names = [d[0] for d in cur.description]
    for values in cur:
        yield dict(zip(names, values, strict=True))


def in_pages(
    db: sqlite_utils.Database,
    columns: str,
    where: str = "",
    params: Sequence[Any] = (),
    *,
    page: int | None = None,
) -> Iterator[tuple[Any, ...]]:
    """``audit_events`` rows (``columns``, starting with ``seq``) in seq order, read a page
    at a time (keyset on seq): a walk over the whole log never holds it in memory. A
    SQLite cursor reads lazily anyway; psycopg's fetches a whole result at once."""
    page = page or PAGE
    if not columns.lstrip().startswith("seq"):
        raise ValueError("in_pages needs seq as the first column")
    cond = where.removeprefix(" WHERE ")
    head = f"SELECT {columns} FROM audit_events WHERE " + (f"({cond}) AND " if cond else "")
    first = head.removesuffix(" WHERE ").removesuffix(" AND ") + " ORDER BY seq LIMIT ?"
    rows = db.execute(first, [*params, page]).fetchall()
    while rows:
        yield from rows
        if len(rows) < page:
            return
        rows = db.execute(
            head + "seq > ? ORDER BY seq LIMIT ?", [*params, rows[-1][0], page]
        ).fetchall()


def _paged_rows(
    db: sqlite_utils.Database, columns: str, where: str, params: list[Any]
) -> Iterator[dict[str, Any]]:
    names = [c.strip() for c in columns.split(",")]
    for values in in_pages(db, columns, where, params):
        yield dict(zip(names, values, strict=True))


def export(
    db: sqlite_utils.Database,
    fmt: Literal["jsonl", "csv"],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int | None = None,
) -> Iterator[str]:
    """Events (all, or those matching the filters of ``query``), with their hashes, as
    JSON lines or CSV (one string per line). Each line is exactly as stored, so an
    outside verifier can recompute plain hashes and check links."""
    where, params = _where(since, until, actor, action, target)
    if limit:
        rows = _raw_rows(db, _select(_ALL, where, limit, False), params)
    else:
        rows = _paged_rows(db, _ALL, where, params)
    yield from _format(rows, fmt)


def chain_range(db: sqlite_utils.Database, first: int, last: int) -> Iterator[dict[str, Any]]:
    """Every event from ``first`` to ``last`` (the chain that links them)."""
    sql = f"SELECT {_ALL} FROM audit_events WHERE seq BETWEEN ? AND ? ORDER BY seq"
    return _raw_rows(db, sql, [first, last])


def _format(rows: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row, ensure_ascii=False) + "\n"
        return
    columns = [*_FIELDS, "prev_hash", "hash"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow(row)
        yield buf.getvalue()
