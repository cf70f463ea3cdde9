"""Safe keys in every dialog: esc decides nothing, enter confirms only what was asked,
destructive choices need their own key and a second confirmation, invalid input re-asks."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import pick, plain, wait_for


async def test_approval_dialog_esc_and_enter_decide_nothing(make_app: Any, tui_db: Any) -> None:
    from opsconsole.audit import AuditLog
    from opsconsole.runbooks.approvals import approval_for
    from opsconsole.runbooks.state import list_runs
    from opsconsole.tui.run_control import approve_run, start_runbook
    from opsconsole.tui.screens.modals import ApprovalModal, ConfirmModal

    # bob asks for approval; ana (the console) decides.
    bob_app = make_app(start="runbooks")
    async with bob_app.run_test(size=(80, 24)) as pilot:
        bob_app.ctx.audit.actor = "bob"
        handle = start_runbook(bob_app, "tui-approval", {})
        assert handle is not None
        await wait_for(pilot, lambda: handle.status == "waiting_approval")
    run_id = handle.run_id
    assert run_id is not None
    app = make_app(start="runbooks")
    async with app.run_test(size=(80, 24)) as pilot:
        for keys in (["escape"], ["enter"]):
            approve_run(app, run_id)
            await wait_for(pilot, lambda: isinstance(app.screen, ApprovalModal))
            await pilot.press(*keys)
            await wait_for(pilot, lambda: not isinstance(app.screen, ApprovalModal))
            assert approval_for(tui_db, run_id, "gate").decision == "pending"
        # d asks again; esc there keeps waiting, y denies.
        approve_run(app, run_id)
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalModal))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("enter")  # focus rests on "Keep waiting"
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalModal))
        assert approval_for(tui_db, run_id, "gate").decision == "pending"
        await pilot.press("a")
        await wait_for(pilot, lambda: approval_for(tui_db, run_id, "gate").decision == "approved")
    assert [r["id"] for r in list_runs(tui_db)] == [run_id]
    del AuditLog


async def test_enter_at_done_confirms_and_the_run_goes_on(make_app: Any) -> None:
    from opsconsole.tui.run_control import start_runbook
    from opsconsole.tui.screens.modals import ConfirmModal

    app = make_app(start="runbooks")
    async with app.run_test(size=(80, 24)) as pilot:
        handle = start_runbook(app, "tui-manual", {"region": "sa-east-1"})
        assert handle is not None
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "done?" in app.screen.prompt and not app.screen.destructive
        await pilot.press("enter")
        await wait_for(pilot, lambda: handle.status == "succeeded")


async def test_a_y_typed_before_the_question_appeared_answers_it(make_app: Any) -> None:
    from opsconsole.tui.run_control import start_runbook
    from opsconsole.tui.screens.run_view import RunScreen

    app = make_app(start="runbooks")
    async with app.run_test(size=(80, 24)) as pilot:
        # The view opens at once ("starting…"), before the engine's first step.
        handle = start_runbook(app, "tui-manual", {"region": "sa-east-1"})
        assert handle is not None
        assert isinstance(app.screen, RunScreen)
        assert "starting" in " ".join(handle.log)
        # ``y`` on the run view, before the engine has even started (no await since).
        app.screen.action_type_ahead("y")
        await wait_for(pilot, lambda: handle.status == "succeeded")
        assert any("typed before the question appeared" in line for line in handle.log)


async def test_required_parameter_empty_re_asks_and_creates_no_run(
    make_app: Any, tui_db: Any
) -> None:
    from opsconsole.runbooks.state import list_runs
    from opsconsole.tui.screens.launch import LaunchModal

    app = make_app(start="runbooks")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        names = [b.name for b in screen.books]
        screen.query_one("#rb-table").move_cursor(row=names.index("tui-manual"))
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchModal))
        dialog = app.screen
        dialog.query_one("#run").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog  # still asking
        assert "region is required" in plain(dialog.query_one("#launch-error"))
        await pick(pilot, dialog.query_one("#param-region"), "ap-south-1")
        assert plain(dialog.query_one("#launch-error")) == ""
        await pilot.press("escape")  # cancel: nothing runs
        await wait_for(pilot, lambda: app.screen is screen)
    assert list_runs(tui_db) == []


async def test_plan_dialog_is_a_plan_not_a_run(make_app: Any) -> None:
    from textual.widgets import Button, Label

    from opsconsole.tui.screens.launch import LaunchModal

    app = make_app(start="runbooks")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchModal))
        title = str(app.screen.query_one(".dialog-title", Label).render())
        assert title.startswith("Plan")
        assert not app.screen.query("#run")
        assert app.screen.query_one("#plan", Button).variant == "primary"


async def test_unknown_region_failover_is_refused(make_app: Any) -> None:
    from opsconsole.tui.screens.launch import LaunchModal

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None)
        app.run_command("failover nowhere-1")
        await pilot.pause()
        assert not isinstance(app.screen, LaunchModal)
        assert any("unknown region 'nowhere-1'" in n.message for n in app._notifications)


async def test_screen_key_leaves_a_run_view_for_that_screen(make_app: Any) -> None:
    from opsconsole.tui.run_control import start_runbook
    from opsconsole.tui.screens.modals import ConfirmModal
    from opsconsole.tui.screens.run_view import RunScreen

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None)
        handle = start_runbook(app, "tui-manual", {"region": "sa-east-1"})
        assert handle is not None
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and not handle.active)
        await pilot.press("1")
        await wait_for(pilot, lambda: app.screen is app.dashboard)
        await pilot.press("2", "1")
        await wait_for(pilot, lambda: app.screen is app.dashboard)


async def test_esc_clears_an_applied_filter_before_leaving(make_app: Any) -> None:
    app = make_app(start="runbooks")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        total = len(screen.books)
        await pilot.press("slash", *"backup", "enter")
        await wait_for(pilot, lambda: len(screen.books) < total)
        field = screen.query_one("#rb-filter")
        assert field.display and field.value == "backup"  # shown while applied
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(screen.books) == total)
        assert app.current_mode == "runbooks" and not field.display
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.current_mode == "dashboard")


async def test_a_run_key_that_does_not_apply_says_why(make_app: Any) -> None:
    from opsconsole.tui.run_control import open_run
    from opsconsole.tui.runs import RunHandle

    app = make_app(start="runbooks")
    async with app.run_test(size=(80, 24)) as pilot:
        handle = RunHandle(runbook="tui-manual", params={}, run_id="r-1", status="failed")
        handle.error = "answer does not match '[a-z]+'"
        open_run(app, handle)
        await pilot.pause()
        footer = {
            b.binding.action
            for b in app.screen.active_bindings.values()
            if app.screen.check_action(b.binding.action, ())
        }
        assert not {"abort_run", "approve_run", "resume_run"} & footer
        await pilot.press("u")
        await wait_for(
            pilot, lambda: any("nothing to resume" in n.message for n in app._notifications)
        )
