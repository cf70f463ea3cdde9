from __future__ import annotations

from typing import Any

from tests.tui.conftest import wait_for


async def test_declare_incident_and_check_off_a_task(make_app: Any, tui_db: Any) -> None:
    from opsconsole.audit import query
    from opsconsole.tui.screens.incident_view import IncidentScreen

    app = make_app(start="incidents")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DeclareModal")
        # The down region from the dashboard is prefilled.
        assert app.screen.query_one("#f-regions").selected == ["sa-east-1"]
        await pilot.press(*"payments down in Sao Paulo")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, IncidentScreen))
        screen = app.screen
        inc = screen.view.incident
        assert inc.severity == "SEV1" and inc.regions == ["sa-east-1"]
        first = inc.tasks[0]
        assert first.status == "pending"
        await pilot.press("d")
        await wait_for(pilot, lambda: screen.view.incident.tasks[0].status == "done")
        await pilot.press("u")
        await pilot.press(*"failing over")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.view.incident.last_update_at is not None)
    events = query(tui_db, action="incident.")
    assert {e["interface"] for e in events} == {"tui"}
    assert any(e["action"] == "incident.declare" for e in events)
    assert any(e["action"].startswith("incident.task") for e in events)


async def test_read_only_hides_declare_and_task_actions(make_app: Any) -> None:
    app = make_app(start="incidents", read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert type(app.screen).__name__ == "IncidentsScreen"
        keys = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert "declare_incident" not in {k for k in keys if app.screen.check_action(k, ())}
