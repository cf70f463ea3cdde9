"""plan: renders everything, runs only read-only steps, is honest about unknowns."""

from __future__ import annotations

from opsconsole.runbooks import plan_run


async def test_plan_runs_only_check_steps_and_marks_unknowns(env, write_runbook, tmp_path):
    rb = write_runbook(f"""
        name: planned
        params:
          region: {{required: true}}
          token: {{secret: true}}
        steps:
          - id: look
            check: true
            shell: ["echo", '{{"count": 7}}']
          - id: change
            shell: "touch {tmp_path}/changed; echo {{{{ steps.look.json.count }}}} {{{{ token }}}}"
          - id: uses-change
            shell: "echo {{{{ steps.change.stdout }}}}"
          - id: depends
            when: "steps.change.rc == 0"
            shell: "touch {tmp_path}/depends"
          - id: static-skip
            when: "region == 'nowhere'"
            shell: "true"
        rollback:
          - {{id: undo, shell: "touch {tmp_path}/undone"}}
        """)
    steps = await plan_run(rb, {"region": "sa-east-1", "token": "hunter2-secret"}, env=env)
    by = {s.id: s for s in steps}
    assert by["look"].executed and by["look"].status == "succeeded"
    assert not any(p.name in ("changed", "depends", "undone") for p in tmp_path.iterdir())
    # The secret reaches the shell through its environment, never the command line.
    assert by["change"].rendered["command"] == (
        f'touch {tmp_path}/changed; echo 7 "$OPSCONSOLE_SECRET_1"'
    )
    assert by["change"].rendered["hidden_env"] == {"OPSCONSOLE_SECRET_1": "***"}
    assert "hunter2-secret" not in repr(steps)
    assert "<unknown: steps.change.stdout>" in by["uses-change"].rendered["command"]
    assert by["uses-change"].depends_on_unknown
    assert by["depends"].will_run == "unknown"
    assert any("steps.change.rc" in n for n in by["depends"].notes)
    assert by["static-skip"].will_run == "no"
    assert not by["change"].executed and not by["undo"].executed
    actions = [r[0] for r in env.db.execute("SELECT action FROM audit_events")]
    assert actions == ["runbook.planned"]
    assert env.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


async def test_plan_of_native_unknown_values_serialises(env, write_runbook):
    import json
    from dataclasses import asdict

    rb = write_runbook("""
        name: native
        steps:
          - {id: make, shell: ["echo", "{}"]}
          - id: post
            http: {url: "http://127.0.0.1:9/x", method: POST, json: {v: "{{ steps.make.json }}"}}
        """)
    steps = await plan_run(rb, {}, env=env)
    assert steps[1].rendered["json"] == {"v": "<unknown: steps.make.json>"}
    json.dumps([asdict(s) for s in steps])
