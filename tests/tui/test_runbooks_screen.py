from __future__ import annotations

from typing import Any

from tests.tui.conftest import pick, plain, wait_for


async def test_run_a_runbook_with_a_manual_confirmation(make_app: Any, tui_db: Any) -> None:
    from opsconsole.audit import query
    from opsconsole.runbooks.state import get_run
    from opsconsole.tui.screens.modals import ConfirmModal
    from opsconsole.tui.screens.run_view import RunScreen

    app = make_app(start="runbooks")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        names = [b.name for b in screen.books]
        screen.query_one("#rb-table").move_cursor(row=names.index("tui-manual"))
        await pilot.press("r")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "LaunchModal")
        # The region is a picker (focused: it is the missing value): open, choose, run.
        await pick(pilot, app.screen.query_one("#param-region"), "eu-central-1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        # The manual step's instructions are in the confirmation itself.
        assert "Check the dashboard for eu-central-1" in app.screen.prompt
        await pilot.press("enter")  # enter confirms the "done?" it was asked
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunScreen) and app.screen.handle.status == "succeeded",
        )
        handle = app.screen.handle
        assert [s.status for s in handle.steps.values()] == ["succeeded"] * 3
        assert any("hello eu-central-1" in line for line in handle.log)
        run_id = handle.run_id
    assert get_run(tui_db, run_id).status == "succeeded"
    events = query(tui_db, action="runbook.")
    assert events and {e["interface"] for e in events} == {"tui"}


async def test_esc_puts_a_question_off_and_x_asks_before_aborting(
    make_app: Any, tui_db: Any
) -> None:
    from opsconsole.runbooks.state import get_run
    from opsconsole.tui.run_control import start_runbook
    from opsconsole.tui.screens.modals import ConfirmModal
    from opsconsole.tui.screens.run_view import RunScreen

    app = make_app(start="runbooks")
    async with app.run_test(size=(80, 24)) as pilot:
        handle = start_runbook(app, "tui-rollback", {})
        assert handle is not None
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        # esc decides nothing: the run keeps waiting for the answer.
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        run_screen = app.screen
        await wait_for(
            pilot, lambda: "enter: answer it now" in plain(run_screen.query_one("#run-status"))
        )
        assert handle.active and handle.steps[("main", "wait")].status == "running"
        # x asks first; enter there keeps the run going.
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert app.screen.destructive and "Abort" in app.screen.prompt
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is run_screen)
        assert handle.active
        # enter on the run view asks the put-off question again.
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, ConfirmModal) and "done?" in app.screen.prompt
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is run_screen)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        # The engine asks about rolling back: destructive, so enter would keep the work;
        # y rolls back.
        await wait_for(
            pilot, lambda: isinstance(app.screen, ConfirmModal) and "Roll back" in app.screen.prompt
        )
        assert app.screen.destructive
        await pilot.press("y")
        await wait_for(pilot, lambda: handle.status == "rolled_back")
        assert handle.steps[("rollback", "undo")].status == "succeeded"
        # The footer follows the state: nothing to abort, approve or roll back now.
        await wait_for(pilot, lambda: not run_screen.check_action("abort_run", ()))
        assert not run_screen.check_action("approve_run", ())
        assert not run_screen.check_action("rollback_run", ())
    assert get_run(tui_db, handle.run_id).status == "rolled_back"


async def test_read_only_hides_run_actions(make_app: Any) -> None:
    app = make_app(start="runbooks", read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert type(app.screen).__name__ == "RunbooksScreen"
        footer_actions = {
            b.binding.action
            for b in app.screen.active_bindings.values()
            if b.enabled and app.screen.check_action(b.binding.action, ())
        }
        assert "launch_runbook" not in footer_actions
        assert "plan" in footer_actions


async def test_waiting_for_approval_then_resume_after_another_person_approves(
    make_app: Any, tui_db: Any
) -> None:
    from opsconsole.audit import AuditLog
    from opsconsole.runbooks import decide_approval
    from opsconsole.tui.run_control import start_runbook
    from opsconsole.tui.screens.run_view import RunScreen

    app = make_app(start="runbooks")
    async with app.run_test(size=(120, 40)) as pilot:
        handle = start_runbook(app, "tui-approval", {})
        assert handle is not None
        await wait_for(pilot, lambda: handle.status == "waiting_approval")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: "WAITING APPROVAL" in plain(screen.query_one("#run-status")))
        # Someone else approves from their terminal (what `runbook approve` calls).
        decide_approval(
            tui_db, AuditLog(tui_db, actor="bob"), handle.run_id, approve=True, comment="go"
        )
        await pilot.press("u")
        await wait_for(pilot, lambda: handle.status == "succeeded")
        assert handle.steps[("main", "act")].status == "succeeded"


async def test_resume_an_interrupted_run_from_the_runs_list(make_app: Any, tui_db: Any) -> None:
    from opsconsole.runbooks.state import get_run
    from opsconsole.tui.run_control import start_runbook
    from opsconsole.tui.screens.modals import ConfirmModal
    from opsconsole.tui.screens.run_view import RunScreen

    app = make_app(start="runbooks")
    async with app.run_test(size=(120, 40)) as pilot:
        handle = start_runbook(app, "tui-rollback", {})
        assert handle is not None
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("escape")  # put the question off, then abort from the run view
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_for(
            pilot, lambda: isinstance(app.screen, ConfirmModal) and "Roll back" in app.screen.prompt
        )
        await pilot.press("enter")  # enter keeps what was done: interrupted, resumable
        await wait_for(pilot, lambda: handle.status == "interrupted")
        await pilot.press("escape")
        runs_screen = app.screen
        await wait_for(pilot, lambda: any(r["id"] == handle.run_id for r in runs_screen.runs))
        await pilot.press("tab")
        index = [r["id"] for r in runs_screen.runs].index(handle.run_id)
        runs_screen.query_one("#run-table").move_cursor(row=index)
        await pilot.press("u")
        # The engine asks whether to re-run the interrupted manual step, then the step
        # asks again: answer yes to each question until the run ends.
        questions = 0
        while not (isinstance(app.screen, RunScreen) and app.screen.handle.status == "succeeded"):
            await wait_for(
                pilot,
                lambda: (
                    isinstance(app.screen, ConfirmModal)
                    or (
                        isinstance(app.screen, RunScreen)
                        and app.screen.handle.status == "succeeded"
                    )
                ),
            )
            if isinstance(app.screen, ConfirmModal):
                questions += 1
                asked = app.screen
                await pilot.press("y")
                await wait_for(pilot, lambda asked=asked: app.screen is not asked)
        assert 1 <= questions <= 2
    assert get_run(tui_db, handle.run_id).status == "succeeded"


async def test_plan_renders_steps_and_changes_nothing(make_app: Any, tui_db: Any) -> None:
    from opsconsole.runbooks import load_runbook
    from opsconsole.runbooks.state import list_runs
    from opsconsole.tui.screens.plan import PlanScreen

    app = make_app(start="runbooks")
    async with app.run_test(size=(120, 40)) as pilot:
        book = next(b for b in app.screen.books if b.name == "tui-manual")
        app.push_screen(PlanScreen(load_runbook(book.path), {"region": "ap-south-1"}))
        await wait_for(
            pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.query("#plan-status")
        )
        screen = app.screen
        await wait_for(
            pilot, lambda: "plan of tui-manual" in plain(screen.query_one("#plan-status"))
        )
        body = plain(screen.query_one("#plan-body"))
        assert "hello ap-south-1" in body and "confirm" in body
    assert list_runs(tui_db) == []


async def test_a_key_typed_before_the_list_is_read_acts_on_the_list(make_app: Any) -> None:
    """The runbooks screen is drawn before it reads the files; ``2`` ``p`` typed at once
    still plans the first runbook (the key is not lost on an empty list)."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None)
        await pilot.press("2", "p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "LaunchModal")
