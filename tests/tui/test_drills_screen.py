from __future__ import annotations

from typing import Any

from tests.tui.conftest import plain, wait_for

DRILLS = """\
plans:
  payments-bcp:
    min_drills_per_year: 2
    min_live_per_year: 1
drills:
  quarterly-failover:
    plan: payments-bcp
    kind: live
    runbook: tui-manual
    params: {region: sa-east-1}
    target: sa-east-1
    owner: ana
    schedule: {cron: "0 3 1 */3 *", timezone: UTC}
    objectives: {rto_seconds: 120, rpo_seconds: 10}
"""


async def test_drills_show_schedule_history_and_compliance(make_app: Any, tui_config: Any) -> None:
    (tui_config.directory / "drills.yaml").write_text(DRILLS, encoding="utf-8")
    app = make_app(start="drills")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: [r["name"] for r in screen.rows] == ["quarterly-failover"])
        report = plain(screen.query_one("#drill-report"))
        assert "payments-bcp" in report and "NOT KEPT" in report
        assert "no drills recorded yet" in plain(screen.query_one("#drill-history"))
