"""The `opsconsole runbook` commands: exit codes, approvals by another person, secrets
kept out of console output, stored output and the audit log, injection never executes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import acting_as, cli, dump, opened


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def _run_id(db_path: Path) -> str:
    with opened(db_path) as db:
        return db.execute("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ('steps:\n  - {id: a, shell: "true"}\n', 0, "succeeded"),
        ('steps:\n  - {id: a, shell: "exit 2"}\n', 10, "failed"),
        ('steps:\n  - {id: a, timeout: 0.5, shell: "sleep 30"}\n', 11, "timed_out"),
        (
            'steps:\n  - {id: a, shell: "exit 1", on_failure: rollback}\n'
            'rollback:\n  - {id: r, shell: "true"}\n',
            12,
            "rolled_back",
        ),
        ('steps:\n  - {id: a, approval: "ok?"}\n', 13, "waiting_approval"),
    ],
)
def test_run_exit_codes(
    tmp_path: Path, config_dir: Path, db_path: Path, body: str, code: int, status: str
) -> None:
    path = _write(tmp_path, "codes", "name: codes\n" + body)
    result = cli("--config", str(config_dir), "runbook", "run", path, "--yes")
    assert result.exit_code == code, result.output
    assert f": {status}" in result.stderr or status in result.stderr
    rows = json.loads(cli("runbook", "runs", "--json", "--status", status).stdout)
    assert len(rows) == 1


def test_invalid_runbook_exits_15(tmp_path: Path, config_dir: Path) -> None:
    path = _write(tmp_path, "bad", "name: bad\nsteps:\n  - {id: a, shel: x}\n")
    result = cli("--config", str(config_dir), "runbook", "run", path)
    assert result.exit_code == 15
    assert f"{path}:3:13: steps[0].shel: unknown field" in result.stderr


def test_run_linked_to_an_unknown_incident_is_refused_before_it_starts(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    path = _write(tmp_path, "linked", 'name: linked\nsteps:\n  - {id: a, shell: "true"}\n')
    c = ("--config", str(config_dir), "runbook", "run", path, "--yes")
    result = cli(*c, "--incident", "INC-2099-0042")
    assert result.exit_code == 4, result.output
    assert "no incident INC-2099-0042" in result.stderr
    assert json.loads(cli("runbook", "runs", "--json").stdout) == []
    declared = cli(
        "--config",
        str(config_dir),
        "incident",
        "declare",
        "--title",
        "t",
        "--severity",
        "SEV3",
        "--category",
        "system-failure",
    )
    iid = declared.stdout.split()[1]
    assert cli(*c, "--incident", iid.lower()).exit_code == 0
    assert json.loads(cli("runbook", "runs", "--json").stdout)[0]["incident_id"] == iid


def test_runs_with_an_unknown_status_is_a_usage_error() -> None:
    result = cli("runbook", "runs", "--status", "sucess")
    assert result.exit_code == 2, result.output
    assert "'sucess' is not a run status; use running, succeeded" in result.output


def test_as_and_environment_cannot_pass_the_two_person_check(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    """``--as`` is an annotation and $LOGNAME/$USER are ignored: the requester's own
    account cannot approve; a second account (here through the capability, as another
    process would) can. Real separate accounts: tests/test_identity_accounts.py."""
    from opsconsole.audit import AuditLog
    from opsconsole.runbooks import decide_approval
    from opsconsole.store import open_db

    path = _write(
        tmp_path,
        "appr",
        """\
        name: appr
        steps:
          - {id: gate, approval: "change window?"}
          - {id: act, shell: "echo acted"}
        """,
    )
    me = acting_as(db_path)
    cfg = ("--config", str(config_dir))
    assert cli(*cfg, "runbook", "run", path).exit_code == 13
    run_id = _run_id(db_path)
    spoof = {"LOGNAME": "bob", "USER": "bob", "LNAME": "bob", "USERNAME": "bob"}
    for who in ("bob", me.upper(), f" {me}", f"{me} "):  # as the annotation says
        refused = cli(*cfg, "--as", who, "runbook", "approve", run_id, env=spoof)
        assert refused.exit_code == 7, refused.output
        assert "cannot approve" in refused.stderr
        assert "--as" not in refused.stderr
    db = open_db(db_path)
    decide_approval(db, AuditLog(db, actor="bob"), run_id, approve=True, comment="go")
    done = cli(*cfg, "runbook", "resume", run_id)
    assert done.exit_code == 0, done.output
    log = cli("runbook", "log", run_id, "--json")
    steps = json.loads(log.stdout)["steps"]
    assert [s["status"] for s in steps] == ["succeeded", "succeeded"]
    assert "approved by bob: go" in steps[0]["output"]
    audit = json.loads(cli("audit", "list", "--action", "runbook.approval", "--json").stdout)
    assert [(e["actor"], e["outcome"]) for e in audit] == [
        (me, "ok"),
        *[(me, "denied")] * 4,
        ("bob", "ok"),
    ]
    assert [e["details"].get("on_behalf_of") for e in audit[1:5]] == [
        "bob",
        me.upper(),
        f" {me}",
        f"{me} ",
    ]


def test_secret_never_appears_in_console_db_or_audit(
    tmp_path: Path, config_dir: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, env_secret, file_secret = "p4ss-w0rd-xyz", "env-t0ken-abc", "f1le-k3y-def"
    (config_dir / "settings.yaml").write_text("secret_env: [DEPLOY_KEY]\n")
    monkeypatch.setenv("DEPLOY_KEY", env_secret)
    (tmp_path / "keyfile").write_text(file_secret + "\n")
    path = _write(
        tmp_path,
        "sec",
        f"""\
        name: sec
        params:
          password: {{secret: true, required: true}}
        steps:
          - id: use
            shell: >-
              echo pw={{{{ password }}}} env={{{{ env('DEPLOY_KEY') }}}}
              file={{{{ secret_file('{tmp_path}/keyfile') }}}}; echo {{{{ password }}}} >&2
          - id: fail
            shell:
              command: ["sh", "-c", "echo $PW; exit 3"]
              env: {{PW: "{{{{ password }}}}"}}
            on_failure: continue
        """,
    )
    monkeypatch.setenv("OPSCONSOLE_VAR_PASSWORD", secret)
    result = cli("--config", str(config_dir), "runbook", "run", path, "--yes")
    plan = cli("--config", str(config_dir), "runbook", "plan", path)
    assert result.exit_code == 0, result.output
    run_id = _run_id(db_path)
    log = cli("runbook", "log", run_id)
    log_json = cli("runbook", "log", run_id, "--json")
    export = cli("audit", "export")
    with opened(db_path) as db:
        stored = dump(db)
    for text in (result.output, plan.output, log.output, log_json.output, export.output, stored):
        for value in (secret, env_secret, file_secret):
            assert value not in text
    assert "pw=*** env=*** file=***" in result.output
    assert "pw=*** env=*** file=***" in log.output


def test_shell_injection_through_params_never_executes(tmp_path: Path, config_dir: Path) -> None:
    from tests.test_templating import INJECTIONS

    path = _write(
        tmp_path,
        "inj",
        """\
        name: inj
        params: {x: {required: true, allow_dash: true}}
        steps:
          - id: echo
            shell: "printf '%s' {{ x }} > out.txt"
          - id: argv
            shell: ["printf", "%s", "{{ x }}"]
        """,
    )
    for payload in INJECTIONS:
        result = cli(
            "--config", str(config_dir), "runbook", "run", path, "--var", f"x={payload}", "--yes"
        )
        assert result.exit_code == 0, (payload, result.output)
        assert (tmp_path / "out.txt").read_text() == payload
        assert not (tmp_path / "PWNED").exists(), payload


def test_plan_changes_nothing_and_list_show_validate(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    rbdir = config_dir / "runbooks"
    rbdir.mkdir()
    (rbdir / "mine.yaml").write_text(
        textwrap.dedent(f"""\
        name: mine
        description: a local runbook
        params: {{who: {{default: me}}}}
        steps:
          - {{id: look, check: true, shell: "echo looking"}}
          - {{id: touch, shell: "touch {tmp_path}/touched"}}
        """)
    )
    cfg = ("--config", str(config_dir))
    plan = cli(*cfg, "runbook", "plan", "mine")
    assert plan.exit_code == 0, plan.output
    assert "looking" in plan.stdout and not (tmp_path / "touched").exists()
    listing = cli(*cfg, "runbook", "list", "--json")
    names = {r["name"] for r in json.loads(listing.stdout)}
    assert {"mine", "regional-failover", "backup-restore", "breach-response"} <= names
    show = cli(*cfg, "runbook", "show", "mine")
    assert "look" in show.stdout and "(check)" in show.stdout
    assert cli(*cfg, "runbook", "validate").exit_code == 0
    with opened(db_path) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
