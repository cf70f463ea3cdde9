"""The Textual console: one mode per screen, k9s-style keys, a read-only mode.

Build it with :func:`create_app` (tests hand it a temporary database and the demo
inventory); run it with :func:`run_tui`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen

from opsconsole.changes import Change
from opsconsole.events import Event
from opsconsole.tui.context import MUTATING_ACTIONS, TuiContext
from opsconsole.tui.feed import HealthSnapshot
from opsconsole.tui.runs import RunManager
from opsconsole.tui.screens.audit import AuditScreen
from opsconsole.tui.screens.command import CommandLine
from opsconsole.tui.screens.help import HelpScreen
from opsconsole.tui.screens.modals import ConfirmModal

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.config import Config
    from opsconsole.store import Location
    from opsconsole.tui.feed import HealthFeed

__all__ = ["SCREENS_ORDER", "OpsConsoleApp", "create_app", "run_tui"]

# mode name -> (key, title, help)
SCREENS_ORDER: dict[str, tuple[str, str, str]] = {
    "dashboard": ("1", "Dashboard", "Live health of every region and service"),
    "runbooks": ("2", "Runbooks", "List, plan and run runbooks; resume interrupted runs"),
    "incidents": ("3", "Incidents", "Declare and command incidents"),
    "drills": ("4", "Drills", "DR drill schedule, history and compliance"),
    "audit": ("5", "Audit", "The audit log: filter, verify"),
    "events": ("6", "Events", "What changed: health, runs, approvals, incidents, drills; by whom"),
}


class StoreChanged(Message):
    """Changes committed to the store (by anyone) since the last message."""

    def __init__(self, changes: list[Change], *, history: bool = False) -> None:
        super().__init__()
        self.changes = changes
        self.history = history  # what happened before the console started: no notes


class HealthUpdated(Message):
    """A new health snapshot. A newer one replaces it while it waits in the queue, so a
    busy console drops stale updates instead of lagging behind."""

    def __init__(self, snapshot: HealthSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HealthUpdated)


def _dashboard() -> Screen[Any]:
    from opsconsole.tui.screens.dashboard import DashboardScreen

    return DashboardScreen()


def _runbooks() -> Screen[Any]:
    from opsconsole.tui.screens.runbooks import RunbooksScreen

    return RunbooksScreen()


def _incidents() -> Screen[Any]:
    from opsconsole.tui.screens.incidents import IncidentsScreen

    return IncidentsScreen()


def _drills() -> Screen[Any]:
    from opsconsole.tui.screens.drills import DrillsScreen

    return DrillsScreen()


def _events() -> Screen[Any]:
    from opsconsole.tui.screens.events import EventsScreen

    return EventsScreen()


class OpsConsoleApp(App[None]):
    """The console. ``ctx`` holds config, database and the audit log (interface tui)."""

    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    ENABLE_COMMAND_PALETTE = True
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "dashboard": _dashboard,
        "runbooks": _runbooks,
        "incidents": _incidents,
        "drills": _drills,
        "audit": AuditScreen,
        "events": _events,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        *[
            Binding(key, f"show('{mode}')", title, show=False)
            for mode, (key, title, _) in SCREENS_ORDER.items()
        ],
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("colon", "command", "Cmd", key_display=":"),
        Binding("i", "jump_incident", "Incident", show=False),
        Binding("escape", "back", "Back", show=False),
        Binding("q", "quit_console", "Quit"),
        # Ctrl-C quits, as in every terminal program (Textual's default only says "ctrl+q").
        Binding("ctrl+c", "quit_console", "Quit", show=False, priority=True),
    ]

    show_config_dir = False  # the config directory in the header (set by the CLI entry point)
    # Open incidents (IncidentView), nearest clock first. Every screen's IncidentBar
    # watches it: a change redraws the bars, an unchanged list redraws nothing.
    incidents: reactive[list[Any]] = reactive(list, always_update=False, init=False)

    def __init__(
        self,
        ctx: TuiContext,
        *,
        health_feed: HealthFeed | None = None,
        start: str = "dashboard",
        animate: bool = True,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.health_feed = health_feed
        self.start_mode = start
        self.active_runs: set[str] = set()
        self.runs = RunManager(self)
        self.last_snapshot: HealthSnapshot | None = None
        self.dashboard: Any = None  # the dashboard screen, once it exists
        self.failovers: dict[str, Any] = {}  # region -> FailoverInfo (the dashboard reads them)
        self.health_updates = 0
        self.recent_changes: deque[Change] = deque(maxlen=2000)  # newest last
        self.change_listeners: list[Callable[[list[Change]], None]] = []
        self.own_seqs: set[int] = set()  # audit events this console wrote
        self.changes_seen = 0
        self._help: HelpScreen | None = None
        self._built_modes: set[str] = set()  # modes whose screen exists (switched to once)
        self._instant_switch = False
        self._stop_feed = threading.Event()
        _remember_own_records(ctx, self.own_seqs)
        # Engine events arrive on the bus (maybe from a worker thread): hop to the UI loop.
        ctx.bus.subscribe(self._bus_event)
        if not animate:
            self.animation_level = "none"

    def _bus_event(self, event: Event) -> None:
        if threading.get_ident() == self._thread_id:
            self.runs.on_event(event)
        else:
            self.call_from_thread(self.runs.on_event, event)

    # --- lifecycle --------------------------------------------------------------------

    def on_mount(self) -> None:
        env = ""
        if self.ctx.config is not None:
            envs = {r.environment for r in self.ctx.config.inventory.regions.values()}
            env = "/".join(sorted(envs))
        parts = [p for p in (env, self.ctx.actor, "READ-ONLY" if self.ctx.read_only else "") if p]
        if self.show_config_dir and self.ctx.config is not None:
            # Which config: the paths printed before the TUI covered the shell stay visible.
            parts.append(_home_short(self.ctx.config.directory))
        self.sub_title = " · ".join(parts)
        if self.health_feed is None and self.ctx.config is not None:
            from opsconsole.tui.monitor_feed import make_feed

            self.health_feed = make_feed(self.ctx)
        if self.health_feed is not None:
            self._poll(self.health_feed)
        else:
            self.last_snapshot = HealthSnapshot(
                note="no config: pass --config DIR (or run `opsconsole demo`)"
            )
        self.refresh_incidents()
        self.set_interval(5.0, self.refresh_incidents)
        self._watch_changes(self.ctx.db_path)
        self.switch_mode(self.start_mode)

    # --- other operators' changes (opsconsole.changes) ------------------------------------

    @work(thread=True, exclusive=True, group="store-changes", exit_on_error=False)
    def _watch_changes(self, db_path: Location) -> None:
        """Follow the store (SQLite's change counter, PostgreSQL's notifications); hand
        new audit events to the UI loop."""
        from textual.worker import get_current_worker

        from opsconsole.changes import open_changes

        worker = get_current_worker()
        watcher = open_changes(db_path)
        try:
            cursor = watcher.cursor_now()
            history = watcher.changes_since(max(0, cursor - 200))
            if history:
                self.post_message(StoreChanged(history, history=True))
            while not (worker.is_cancelled or self._stop_feed.is_set()):
                found = watcher.wait(cursor, self._stop_feed, timeout=1.0)
                if found:
                    cursor = found[-1].seq
                    self.post_message(StoreChanged(found))
        finally:
            watcher.close()

    def on_store_changed(self, message: StoreChanged) -> None:
        from opsconsole.changes import describe

        if not self.screen_stack:  # a change that lands while the app is shutting down
            return
        self.changes_seen += 1
        last = self.recent_changes[-1].seq if self.recent_changes else 0
        fresh = [c for c in message.changes if c.seq > last]
        self.recent_changes.extend(fresh)
        if any(c.kind == "incident" for c in fresh):
            self.refresh_incidents()
        theirs = [c for c in fresh if c.seq not in self.own_seqs and c.kind in NOTED_KINDS]
        if not message.history:
            for c in theirs[-3:]:
                self.notify(describe(c), title="changed elsewhere", timeout=8)
        from textual.css.query import NoMatches

        for listener in list(self.change_listeners):
            try:
                listener(fresh)
            except NoMatches:  # a screen between unmount and removal: nothing to draw
                self.change_listeners.remove(listener)

    def refresh_incidents(self) -> None:
        """Open incidents with their nearest clock, for the header line of every screen."""
        from opsconsole.tui.incident_feed import open_incidents

        try:
            found = open_incidents(self.ctx)
        except Exception:  # the header must never break a screen
            return
        far = self.ctx.clock() + timedelta(days=3650)
        self.incidents = sorted(found, key=lambda i: i.deadline_due or far)

    def action_jump_incident(self) -> None:
        """``i``: the open incident with the nearest deadline (SEV1/SEV2 first)."""
        from opsconsole.tui.screens.incident_view import IncidentScreen

        target = next((i for i in self.incidents if i.severity in ("SEV1", "SEV2")), None)
        target = target or (self.incidents[0] if self.incidents else None)
        if target is None:
            self.notify("no open incident", severity="warning")
            return
        if self.current_mode != "incidents":
            self.switch_mode("incidents")
        top = self.screen
        if isinstance(top, IncidentScreen) and top.incident_id == target.id:
            return
        self.push_screen(IncidentScreen(target.id))

    def on_unmount(self) -> None:
        self._stop_feed.set()

    # --- live health ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="health-feed", exit_on_error=False)
    def _poll(self, feed: HealthFeed) -> None:
        """One poll at a time: the next starts only after the last returned."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        last = HealthSnapshot()
        while not (worker.is_cancelled or self._stop_feed.is_set()):
            try:
                snap = feed.poll(self._stop_feed)
            except Exception as exc:  # a failing feed must not take the console down
                snap = HealthSnapshot(
                    regions=last.regions,
                    targets=last.targets,
                    host=last.host,
                    note=f"health feed error: {exc}",
                )
            last = snap
            self.post_message(HealthUpdated(snap))
            self._stop_feed.wait(feed.interval)

    def on_health_updated(self, message: HealthUpdated) -> None:
        before = {r.id for r in self.last_snapshot.down_regions} if self.last_snapshot else set()
        self.last_snapshot = message.snapshot
        newly = [r for r in message.snapshot.down_regions if r.id not in before]
        if newly and self.current_mode != "dashboard":
            # Seen from any screen, not only the dashboard's banner.
            names = ", ".join(f"{r.id} ({r.name}){self._served_by(r.id)}" for r in newly)
            hint = "" if all(r.id in self.failovers for r in newly) else ", f: fail over"
            self.notify(f"✖ DOWN: {names}. 1: dashboard{hint}", severity="error", timeout=15)
        self.health_updates += 1
        if self.dashboard is not None:
            if self.current_mode == "dashboard":
                self.dashboard.apply_snapshot(message.snapshot)
            else:  # not visible: drawn when the person comes back (on_screen_resume)
                self.dashboard.stale = True

    def _served_by(self, region: str) -> str:
        info = self.failovers.get(region)
        return "" if info is None else f", served by {info.target or 'its standby'}"

    # --- keys --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.ctx.read_only and action in MUTATING_ACTIONS:
            return False
        # While a dialog is open, screen switches and quit wait: a runbook may be asking.
        modal_open = isinstance(self.screen, ModalScreen | HelpScreen)
        return not (modal_open and action in ("show", "quit_console", "command", "help"))

    def switch_mode(self, mode: str) -> Any:
        """Textual holds every paint for 50 ms on a mode switch (``delay_update``) to hide
        a screen that is still composing. A mode whose screen was built before has nothing
        to hide, so it is drawn at once: that hold was most of a screen key's latency
        (``bench/tui.py``: ``5`` and ``1`` took 72-76 ms, 50 of them waiting)."""
        self._instant_switch = mode in self._built_modes
        try:
            return super().switch_mode(mode)
        finally:
            self._instant_switch = False
            self._built_modes.add(mode)

    def delay_update(self, delay: float = 0.05) -> None:
        if not self._instant_switch:
            super().delay_update(delay)

    def action_show(self, mode: str) -> None:
        """A screen key: that mode's own screen, even from a run view pushed on it."""
        if self.current_mode != mode:
            self.switch_mode(mode)
            return
        while len(self.screen_stack) > 1 and not isinstance(self.screen, ModalScreen):
            self.pop_screen()

    def action_help(self) -> None:
        from opsconsole.tui.screens.help import binding_rows

        # Listed before the dialog opens: while it is up, screen keys are paused. One help
        # screen, reused: rebuilding it on every key left garbage for slow collections.
        rows = binding_rows(self.screen)
        if self._help is None:
            self._help = HelpScreen(rows)
            self.install_screen(self._help, name="help")  # installed: kept when closed
        else:
            self._help.set_rows(rows)
        self.push_screen("help")

    def action_command(self) -> None:
        self.push_screen(CommandLine(), callback=self.run_command)

    def action_back(self) -> None:
        close_filter = getattr(self.screen, "close_filter", None)
        if close_filter is not None and close_filter():
            return
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self.current_mode != "dashboard":
            self.switch_mode("dashboard")

    def action_quit_console(self) -> None:
        if not self.active_runs:
            self.exit()
            return

        def answer(yes: object) -> None:
            if yes:
                self.exit()

        self.push_screen(
            ConfirmModal(
                f"{len(self.active_runs)} runbook run(s) in progress: "
                f"{', '.join(sorted(self.active_runs))}.\nQuit anyway? "
                "Interrupted runs can be resumed from the Runbooks screen.",
                title="Quit",
            ),
            callback=answer,
        )

    def run_command(self, text: object) -> None:
        """Run a ``:`` command line (also used by tests)."""
        if not isinstance(text, str) or not text:
            return
        word, _, rest = text.partition(" ")
        word = word.lower().lstrip(":")
        for mode in SCREENS_ORDER:
            if mode.startswith(word) or (word == "inc" and mode == "incidents"):
                self.action_show(mode)
                return
        if word in ("q", "quit", "exit"):
            self.action_quit_console()
        elif word in ("h", "help"):
            self.action_help()
        elif word == "verify":
            self.action_show("audit")
            self.call_after_refresh(self.screen.run_action, "verify")
        elif word in ("ev", "events", "event"):
            self.action_show("events")
        elif word == "failover" and not self.ctx.read_only:
            self.offer_failover(rest.strip() or None)
        elif word == "declare" and not self.ctx.read_only:
            self.action_show("incidents")
            self.call_after_refresh(self.screen.run_action, "declare_incident")
        else:
            self.notify(f"unknown command: {text}", severity="warning")

    def offer_failover(self, region: str | None) -> None:
        """Open the failover dialog for ``region`` (see the dashboard's ``f`` key)."""
        from opsconsole.tui.run_control import offer_failover

        offer_failover(self, region)

    # --- command palette ---------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for mode, (key, title, help_text) in SCREENS_ORDER.items():
            yield SystemCommand(f"{title} [{key}]", help_text, lambda m=mode: self.action_show(m))
        yield SystemCommand(
            "Verify audit log", "Walk the hash chain", lambda: self.run_command("verify")
        )
        if not self.ctx.read_only:
            yield SystemCommand(
                "Fail over a region",
                "Start regional-failover for a region",
                lambda: self.offer_failover(None),
            )
            yield SystemCommand(
                "Declare incident", "Open the declare form", lambda: self.run_command("declare")
            )
        yield SystemCommand("Keys", "Every key binding", self.action_help)
        yield SystemCommand("Quit", "Leave the console", self.action_quit_console)


# Changes from elsewhere that get a short note on screen (health has its own banner).
NOTED_KINDS = frozenset({"incident", "runbook", "drill"})


def _remember_own_records(ctx: TuiContext, own: set[int]) -> None:
    """Note the seq of every audit event this console writes, so the change feed can
    tell this operator's changes from other operators' (same account or not)."""
    audit = ctx.audit
    record = audit.record

    def recording(*args: Any, **kwargs: Any) -> int:
        seq = record(*args, **kwargs)
        own.add(seq)
        return seq

    audit.record = recording  # type: ignore[method-assign]


def create_app(
    *,
    config: Config | None,
    db: sqlite_utils.Database,
    actor: str | None = None,
    read_only: bool = False,
    health_feed: HealthFeed | None = None,
    audit_key: bytes | None = None,
    start: str = "dashboard",
    animate: bool = True,
) -> OpsConsoleApp:
    """Build the console over ``db`` and ``config``. Without ``health_feed`` the dashboard
    runs the health monitor on ``config`` itself."""
    from opsconsole.audit import AuditLog

    audit = AuditLog(db, actor=actor, interface="tui", key=audit_key)
    ctx = TuiContext(db=db, audit=audit, config=config, read_only=read_only)
    return OpsConsoleApp(ctx, health_feed=health_feed, start=start, animate=animate)


def _home_short(path: Path) -> str:
    """``~/...`` for paths under the home directory (the header is narrow)."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home()))
    except ValueError:
        return str(path)


def run_tui(
    *,
    config: Config | None,
    db_path: Path,
    actor: str | None = None,
    read_only: bool = False,
    audit_key: bytes | None = None,
) -> None:
    """Open the database and run the console until the person quits (CLI entry point)."""
    from opsconsole.capabilities import register_all
    from opsconsole.store import open_db

    register_all()
    db = open_db(db_path)
    app = create_app(config=config, db=db, actor=actor, read_only=read_only, audit_key=audit_key)
    app.show_config_dir = True
    app.ctx.record("tui.session.start", "", {"read_only": read_only})
    try:
        app.run()
    finally:
        if app.health_feed is not None:
            app.health_feed.close()
        with contextlib.suppress(Exception):
            app.ctx.record("tui.session.end", "")
    if app.return_code:  # a crash inside the console is not a clean exit
        raise SystemExit(app.return_code)
