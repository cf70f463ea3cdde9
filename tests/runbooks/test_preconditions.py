"""Guards in the engine, not the UI: a declared precondition refuses a second failover
of a failed-over region from the CLI and the engine API the scheduler uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import cli, opened

FAILOVER = """\
    name: my-failover
    params:
      region: {required: true}
    preconditions:
      - not_in_effect: [region]
    lock: "fo:{{ region }}"
    steps:
      - {id: standby, shell: ["echo", "{{ regions[region].standby }}"]}
      - {id: switch, shell: ["true"]}
    rollback:
      - {id: restore, undoes: switch, shell: ["true"]}
    """


async def test_engine_refuses_a_second_failover_until_rolled_back(env, operator, write_runbook):
    from opsconsole.runbooks import rollback_run, start_run
    from opsconsole.runbooks.failovers import failovers_in_effect
    from opsconsole.runbooks.preconditions import PreconditionFailed

    rb = write_runbook(FAILOVER, name="my-failover")
    first = await start_run(rb, {"region": "test-1"}, env=env, operator=operator)
    assert first.status == "succeeded"
    runs = env.db.execute("SELECT count(*) FROM runs").fetchone()[0]
    for mode in ("normal", "drill"):  # drill mode: what the scheduler starts
        with pytest.raises(PreconditionFailed, match=f"run {first.run_id} by alice") as err:
            await start_run(rb, {"region": "test-1"}, env=env, operator=operator, mode=mode)
        assert err.value.exit_code == 7
    assert env.db.execute("SELECT count(*) FROM runs").fetchone()[0] == runs  # nothing ran
    other = await start_run(rb, {"region": "test-2"}, env=env, operator=operator)
    assert other.status == "succeeded"
    assert set(failovers_in_effect(env.db, runbook="my-failover")) == {"test-1", "test-2"}
    back = await rollback_run(first.run_id, env=env, operator=operator)
    assert back.status == "rolled_back"
    again = await start_run(rb, {"region": "test-1"}, env=env, operator=operator)
    assert again.status == "succeeded"


def test_cli_refuses_a_second_failover_of_the_shipped_runbook(
    config_dir: Path, db_path: Path
) -> None:
    # A succeeded, not rolled back regional-failover of test-1 in the run records.
    cli("--config", str(config_dir), "runbook", "runs")  # creates the schema
    with opened(db_path) as conn:
        conn.execute(
            "INSERT INTO runs (id, runbook, path, source, params, status, actor, started_at,"
            " updated_at, finished_at) VALUES ('r-old', 'regional-failover', 'p', 's',"
            " '{\"region\": \"test-1\"}', 'succeeded', 'bob', 't', 't', '2026-01-01T00:00:00')"
        )
    res = cli(
        "--config",
        str(config_dir),
        "runbook",
        "run",
        "regional-failover",
        "--var",
        "region=test-1",
        "--yes",
    )
    assert res.exit_code == 7, res.output
    assert "test-1 is already failed over (run r-old by bob)" in res.output
    assert "opsconsole runbook rollback r-old" in res.output
    with opened(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
