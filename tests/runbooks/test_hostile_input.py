"""Templating that cannot be misused, and hostile text that cannot reach the terminal."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.helpers import cli, opened


def _validate(tmp_path: Path, body: str) -> tuple[int, str]:
    path = tmp_path / "v.yaml"
    path.write_text(textwrap.dedent(body))
    res = cli("runbook", "validate", str(path))
    assert "Traceback" not in res.output
    return res.exit_code, res.output


@pytest.mark.parametrize(
    ("shell", "line", "needle"),
    [
        ("\"echo '{{ x }}'\"", 5, "inside quotes"),
        ('"echo \\"{{ x }}\\""', 5, "inside quotes"),
        ('[sh, -c, "echo {{ x }}"]', 5, "sh -c"),
        ('[/bin/bash, -c, "rm {{ x }}"]', 5, "sh -c"),
    ],
)
def test_validate_rejects_templates_the_engine_cannot_quote(
    tmp_path: Path, shell: str, line: int, needle: str
) -> None:
    code, out = _validate(
        tmp_path,
        f"""\
        name: q
        params: {{x: {{default: a}}}}
        steps:
          - id: s
            shell: {shell}
        """,
    )
    assert code == 15, out
    assert f"v.yaml:{line}:" in out and needle in out


def test_validate_rejects_undefined_names_and_infinite_timeouts(tmp_path: Path) -> None:
    code, out = _validate(
        tmp_path,
        """\
        name: u
        steps:
          - {id: mk-file, shell: "true"}
          - {id: use, shell: "echo {{ steps.mk-file.stdout }}"}
          - {id: other, shell: "echo {{ steps.nope.stdout }}"}
        """,
    )
    assert code == 15
    assert "v.yaml:4:" in out and "undefined name 'file'" in out and "steps['my-step']" in out
    assert "v.yaml:5:" in out and "no step with id 'nope'" in out
    code, out = _validate(tmp_path, "name: i\nsteps:\n  - {id: a, timeout: .inf, shell: 'true'}\n")
    assert code == 15 and "v.yaml:3:" in out and "timeout" in out


class Seen(BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        Seen.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Seen)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


async def test_url_values_are_percent_encoded(env, operator, write_runbook, server):
    from opsconsole.runbooks import start_run

    rb = write_runbook(f"""
        name: url
        params: {{x: {{required: true}}, base: {{default: "{server}"}}}}
        steps:
          - {{id: a, http: {{url: "{{{{ base }}}}/api/items/{{{{ x }}}}?q={{{{ x }}}}"}}}}
          - {{id: raw, http: {{url: "{{{{ base }}}}/{{{{ 'api/v2' | url_raw }}}}"}}}}
        """)
    result = await start_run(rb, {"x": "../../admin?x=1#"}, env=env, operator=operator)
    assert result.status == "succeeded", result.error
    enc = "..%2F..%2Fadmin%3Fx%3D1%23"
    assert Seen.paths[-2:] == [f"/api/items/{enc}?q={enc}", "/api/v2"]


async def test_params_pattern_choices_and_leading_dash(env, operator, write_runbook, tmp_path):
    from opsconsole.runbooks import RunbookRunError, start_run

    rb = write_runbook(f"""
        name: p
        params:
          region: {{pattern: "[a-z]{{2}}-[a-z]+-[0-9]", default: sa-east-1}}
          size: {{choices: [small, large], default: small}}
          file: {{default: notes.txt}}
        steps:
          - {{id: a, shell: ["touch", "{tmp_path}/{{{{ file }}}}"]}}
        """)
    for bad, msg in (
        ({"region": "sa-east-1; rm"}, "does not match the pattern"),
        ({"size": "huge"}, "is not one of"),
        ({"file": "--help"}, "starts with '-'"),
    ):
        with pytest.raises(RunbookRunError, match=msg):
            await start_run(rb, bad, env=env, operator=operator)
    assert env.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    ok = await start_run(rb, {"region": "eu-west-1"}, env=env, operator=operator)
    assert ok.status == "succeeded"


HOSTILE = "[/bold][red]x\x1b[31mRED\u202eevil\x07"


def test_markup_and_control_chars_never_reach_the_terminal(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    path = tmp_path / "h.yaml"
    path.write_text(
        "name: h\nparams: {x: {required: true}}\nsteps:\n"
        "  - {id: a, shell: [printf, '%s\\n', '{{ x }}']}\n"
        "  - {id: b, shell: 'exit 3'}\n"
    )
    cfg = ("--config", str(config_dir))
    run = cli(*cfg, "runbook", "run", str(path), "--var", f"x={HOSTILE}", "--yes")
    assert run.exit_code == 10, run.output
    with opened(db_path) as conn:
        run_id = conn.execute("SELECT id FROM runs").fetchone()[0]
    plan = cli(*cfg, "runbook", "plan", str(path), "--var", f"x={HOSTILE}")
    for res in (
        run,
        plan,
        cli("runbook", "log", run_id),
        cli("runbook", "runs"),
        cli("audit", "list"),
    ):
        assert res.exit_code in (0, 10), res.output
        assert "\x1b" not in res.output and "\u202e" not in res.output and "\x07" not in res.output
    log = cli("runbook", "log", run_id).output
    assert "\\x1b[31mRED\\u202eevil\\x07" in log
    assert "[/bold][red]x" in log
