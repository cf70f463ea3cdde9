"""failovers_in_effect: which regions are failed over, from real runs of the real engine."""

from __future__ import annotations

from typing import Any

from opsconsole.runbooks import rollback_run, start_run
from opsconsole.runbooks.failovers import failovers_in_effect
from opsconsole.runbooks.state import get_run

# Shaped like the shipped regional-failover: a `standby` step prints the serving region,
# a gate that may refuse (changes nothing), a change that rolls back when it fails.
FAILOVER = """\
    name: regional-failover
    params:
      region: {required: true}
      fail: {default: "no"}
    steps:
      - id: standby
        shell: ["echo", "{{ regions[region].standby }}"]
      - id: gate
        shell: "test {{ fail }} != gate"
      - id: switch
        on_failure: rollback
        shell: "test {{ fail }} != switch"
    rollback:
      - id: restore
        undoes: switch
        shell: ["true"]
    """


async def test_failovers_in_effect_follows_runs_and_rollbacks(env, operator, write_runbook):
    rb = write_runbook(FAILOVER, name="regional-failover")
    assert failovers_in_effect(env.db) == {}

    first = await start_run(rb, {"region": "test-1"}, env=env, operator=operator)
    assert first.status == "succeeded", first.error
    current = failovers_in_effect(env.db)
    assert list(current) == ["test-1"]
    info = current["test-1"]
    assert (info.run_id, info.target, info.actor, info.mode) == (
        first.run_id,
        "test-2",
        "alice",
        "normal",
    )
    assert info.finished_at == first.finished_at
    assert info.rollback_command == f"opsconsole runbook rollback {first.run_id}"

    # A later attempt refused at its gate changed nothing: the first failover still holds.
    refused = await start_run(rb, {"region": "test-1", "fail": "gate"}, env=env, operator=operator)
    assert refused.status == "failed"
    assert failovers_in_effect(env.db)["test-1"].run_id == first.run_id

    # A failover of test-2 that failed and rolled itself back is not in effect.
    undone = await start_run(rb, {"region": "test-2", "fail": "switch"}, env=env, operator=operator)
    assert undone.status == "rolled_back"
    assert set(failovers_in_effect(env.db)) == {"test-1"}

    # Failing back (rollback_run) ends it; the runs table says rolled_back.
    back = await rollback_run(first.run_id, env=env, operator=operator)
    assert back.status == "rolled_back"
    assert get_run(env.db, first.run_id).status == "rolled_back"
    assert failovers_in_effect(env.db) == {}

    # Failed over again: the new run is the one in effect.
    again = await start_run(rb, {"region": "test-1"}, env=env, operator=operator)
    assert failovers_in_effect(env.db)["test-1"].run_id == again.run_id


async def test_rolling_back_an_older_run_after_a_newer_one_ends_the_failover(
    env, operator, write_runbook
):
    rb = write_runbook(FAILOVER, name="regional-failover")
    older = await start_run(rb, {"region": "test-2"}, env=env, operator=operator)
    newer = await start_run(rb, {"region": "test-2"}, env=env, operator=operator)
    assert failovers_in_effect(env.db)["test-2"].run_id == newer.run_id
    # The older run's rollback restored the route after the newer failover: not in effect.
    await rollback_run(older.run_id, env=env, operator=operator)
    assert failovers_in_effect(env.db) == {}


async def test_only_the_failover_runbook_counts_and_inventory_names_the_standby(
    env, operator, write_runbook
):
    other = write_runbook(
        """\
        name: something-else
        params:
          region: {required: true}
        steps:
          - {id: standby, shell: ["echo", "elsewhere"]}
        """,
        name="something-else",
    )
    done = await start_run(other, {"region": "test-1"}, env=env, operator=operator)
    assert done.status == "succeeded"
    assert failovers_in_effect(env.db) == {}
    # Another failover runbook without a `standby` step: the inventory names the standby.
    current: dict[str, Any] = failovers_in_effect(
        env.db, config=env.config, runbook="something-else"
    )
    assert current["test-1"].target == "elsewhere"
    plain = write_runbook(
        """\
        name: plain-failover
        params:
          region: {required: true}
        steps:
          - {id: switch, shell: ["true"]}
        """,
        name="plain-failover",
    )
    await start_run(plain, {"region": "test-1"}, env=env, operator=operator)
    found = failovers_in_effect(env.db, config=env.config, runbook="plain-failover")
    assert found["test-1"].target == "test-2"
    assert failovers_in_effect(env.db, runbook="plain-failover")["test-1"].target is None
