"""Other processes' changes on PostgreSQL: ``LISTEN`` on a connection of its own.

The ``opsconsole.changes`` migration makes every audit row notify
:data:`~opsconsole.changes.CHANNEL` when its transaction commits (every change to shared
state is audited in the same transaction). :class:`PgChangeListener` blocks on that
notification, so a change reaches an open console as fast as the server can tell it,
with no polling delay.

The notification is only a wake-up; the audit table is the truth. The listener reads the
rows after its cursor whenever it (re)connects (after ``LISTEN``, so nothing committed in
between is missed), whenever a notification names a newer seq, and every
``safety_read`` seconds in any case. A notification lost with a dropped connection, a
database migrated before the trigger existed, or a hot standby (which refuses
``LISTEN``; the listener then polls every ``poll`` seconds) therefore cost latency, never
changes. A dropped connection is re-opened with a bounded back-off.

Writers are serialized by the store's write lock, so audit seqs commit in order and
"everything after seq N" is complete.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from opsconsole.changes import CHANGES_SQL, CHANNEL, POLL_SECONDS, Change, to_changes

if TYPE_CHECKING:
    import psycopg

__all__ = ["PgChangeListener"]

# How long one blocking wait for a notification lasts before the stop flag is looked at
# again. A notification ends the wait at once; this only bounds how long closing takes.
SLICE_SECONDS = 0.25
# Dead peers that send no RST are found by TCP keepalives (libpq's parameters).
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class PgChangeListener:
    """The :class:`~opsconsole.changes.ChangeSource` of a PostgreSQL store."""

    def __init__(
        self,
        url: str,
        *,
        batch: int = 500,
        poll: float = POLL_SECONDS,
        safety_read: float = 30.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.batch = batch
        self.poll = poll
        self.safety_read = safety_read
        self.max_backoff = max_backoff
        self.notifying = True  # False: no trigger or no LISTEN (standby): poll instead
        # Counters for tests and `db status`-like diagnostics.
        self.connects = 0
        self.notifications = 0
        self._conn: psycopg.Connection[Any] | None = None
        self._dirty = True  # read the table before blocking
        self._last_read = 0.0
        self._lock = threading.Lock()

    # --- connection -------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            application_name="opsconsole-changes",
            connect_timeout=10,
            **_KEEPALIVES,  # type: ignore[arg-type]
        )
        self.connects += 1
        notifying = True
        try:
            # LISTEN first, then read: a change committed in between is in the read.
            conn.execute(f"LISTEN {CHANNEL}")
            found = conn.execute(
                "SELECT 1 FROM pg_trigger WHERE tgname = 'audit_events_notify' "
                "AND tgrelid = to_regclass('audit_events') AND tgenabled <> 'D'"
            ).fetchone()
            notifying = found is not None
        except (psycopg.errors.FeatureNotSupported, psycopg.errors.ReadOnlySqlTransaction):
            # A hot standby refuses LISTEN ("during recovery"): poll there.
            notifying = False
        except psycopg.OperationalError:
            conn.close()
            raise
        self.notifying = notifying
        self._conn = conn
        self._dirty = True
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def _read(self, cursor: int) -> list[Change]:
        conn = self._connect()
        rows = conn.execute(CHANGES_SQL.format(p="%s"), (cursor, self.batch)).fetchall()
        self._last_read = time.monotonic()
        self._dirty = len(rows) >= self.batch  # a full batch: there may be more already
        return to_changes(rows)

    def _retrying(self, fn: Any) -> Any:
        """``fn()`` once more on a fresh connection if the connection was lost; a failure
        then is the store's one-line error (StoreError), never psycopg's."""
        import psycopg

        from opsconsole.errors import StoreError
        from opsconsole.store.postgres import display_url

        try:
            try:
                return fn()
            except psycopg.OperationalError:
                self._drop()
                return fn()
        except psycopg.Error as exc:
            self._drop()
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise StoreError(
                f"cannot follow changes in {display_url(self.url)}: {reason}"
            ) from None

    # --- ChangeSource -----------------------------------------------------------------

    def cursor_now(self) -> int:
        with self._lock:

            def newest() -> int:
                row = self._connect().execute("SELECT MAX(seq) FROM audit_events").fetchone()
                return int(row[0] or 0) if row else 0

            return int(self._retrying(newest))

    def changes_since(self, cursor: int) -> list[Change]:
        with self._lock:
            return list(self._retrying(lambda: self._read(cursor)))

    def wait(self, cursor: int, stop: threading.Event, timeout: float = 5.0) -> list[Change]:
        """Block until a change after ``cursor`` is committed (or ``timeout``/``stop``).

        Connection failures are not raised: the listener reconnects (back-off up to
        ``max_backoff`` s) and reads what it missed."""
        import psycopg

        deadline = time.monotonic() + timeout
        backoff = 0.1
        with self._lock:
            while not stop.is_set():
                try:
                    conn = self._connect()
                    due = time.monotonic() - self._last_read >= self.safety_read
                    if self._dirty or due:
                        found = self._read(cursor)
                        if found:
                            return found
                    backoff = 0.1
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    if not self.notifying:
                        stop.wait(min(self.poll, remaining))
                        self._dirty = True
                        continue
                    for note in conn.notifies(timeout=min(SLICE_SECONDS, remaining), stop_after=1):
                        self.notifications += 1
                        seq = _seq(note.payload)
                        if seq is None or seq > cursor:
                            self._dirty = True
                except psycopg.Error:
                    # Lost connection (server restart, failover, terminated backend): the
                    # table tells what was missed once we are back.
                    self._drop()
                    if time.monotonic() + backoff > deadline:
                        stop.wait(max(0.0, deadline - time.monotonic()))
                        return []
                    stop.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
            return []

    def backend_pid(self) -> int | None:
        """The server process of the listening connection (tests terminate it)."""
        return None if self._conn is None or self._conn.closed else int(self._conn.info.backend_pid)

    def close(self) -> None:
        self._drop()


def _seq(payload: str) -> int | None:
    try:
        value = json.loads(payload).get("seq")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
