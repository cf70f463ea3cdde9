"""Secrets stay right (real values after a resume) and stay hidden (argv, console, every
encoding the engine produces); registries are per run; key names match whole words."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.helpers import cli_subprocess, dump, opened

NEW_KEY = "issued-new-key-9f8e7d"


class Api(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply({"api_key": NEW_KEY})

    def do_GET(self) -> None:
        self._reply({"passed": "true", "max_tokens": "true", "bypass_cache": "true"})


@pytest.fixture
def api() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


async def test_resume_uses_the_real_value_of_a_learned_secret(
    env, operator, write_runbook, api, tmp_path
):
    from opsconsole.audit import AuditLog
    from opsconsole.runbooks import decide_approval, resume_run, start_run

    rb = write_runbook(f"""
        name: rotate
        steps:
          - id: rotate
            http: {{url: "{api}/rotate", method: POST}}
          - id: gate
            approval: "use the new key?"
          - id: use
            shell:
              command: ["sh", "-c", "printf %s \\"$K\\" > {tmp_path}/used"]
              env: {{K: "{{{{ steps.rotate.json.api_key }}}}"}}
        """)
    first = await start_run(rb, {}, env=env, operator=operator)
    assert first.status == "waiting_approval"
    stored = env.db.execute("SELECT result FROM run_steps WHERE step_id = 'rotate'").fetchone()[0]
    assert NEW_KEY not in stored  # masked at rest; the real value is sealed
    decide_approval(
        env.db, AuditLog(env.db, actor="bob", interface="test"), first.run_id, approve=True
    )
    from opsconsole.redact import secrets

    secrets.clear()  # as in a new process
    done = await resume_run(first.run_id, env=env, operator=operator)
    assert done.status == "succeeded", done.error
    assert (tmp_path / "used").read_text() == NEW_KEY
    assert NEW_KEY not in dump(env.db)


async def test_words_like_passed_are_not_secret_keys_and_registries_are_per_run(
    env, operator, write_runbook, api
):
    from opsconsole.redact import is_secret_key
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.state import get_steps

    for key in ("passed", "bypass_cache", "max_tokens", "compass", "tokens_used"):
        assert not is_secret_key(key), key
    for key in ("password", "db_password", "api_key", "apiKey", "X-Auth-Token", "secret"):
        assert is_secret_key(key), key
    rb = write_runbook(f"""
        name: check
        steps:
          - {{id: get, http: {{url: "{api}/check"}}}}
          - {{id: echo, shell: "echo true is true"}}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    steps = get_steps(env.db, result.run_id)
    assert steps[0].result["json"]["passed"] == "true"
    assert steps[1].output.strip() == "true is true"
    # A value learned by one run does not mask another run's output.
    rb2 = write_runbook(f"""
        name: learn
        steps:
          - {{id: rotate, http: {{url: "{api}/rotate", method: POST}}}}
        """)
    await start_run(rb2, {}, env=env, operator=operator)
    rb3 = write_runbook(f"""
        name: other
        steps:
          - {{id: say, shell: "echo {NEW_KEY}"}}
        """)
    other = await start_run(rb3, {}, env=env, operator=operator)
    assert get_steps(env.db, other.run_id)[0].output.strip() == NEW_KEY


SECRET = "s3cr'et-Val/ue+9"


def test_secret_param_never_in_argv_console_or_any_encoding(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    rb = tmp_path / "leak.yaml"
    rb.write_text(
        f"""\
name: leak
params:
  key: {{secret: true, required: true}}
steps:
  - id: argv
    shell: "echo {{{{ key }}}} > /dev/null; tr '\\\\0' ' ' < /proc/$$/cmdline > {tmp_path}/cmdline"
  - id: forms
    shell:
      command: ["sh", "-c", "printf '%s\\\\n' \\"$K\\"; printf %s \\"$K\\" | base64; echo \\"$Q\\""]
      env:
        K: "{{{{ key }}}}"
        Q: "{{{{ key | urlencode }}}}"
  - id: h
    http: {{url: "http://127.0.0.1:1/{{{{ key }}}}"}}
"""
    )
    env = {"OPSCONSOLE_DB": str(db_path), "OPSCONSOLE_VAR_KEY": SECRET}
    proc = cli_subprocess("--config", str(config_dir), "runbook", "run", str(rb), "--yes", env=env)
    assert proc.returncode == 10, proc.stderr
    assert "h failed" in proc.stderr
    forms = {
        SECRET,
        quote(SECRET, safe=""),
        base64.b64encode(SECRET.encode()).decode(),
        "s3cr'\"'\"'et",
    }
    assert (tmp_path / "cmdline").read_text().count("OPSCONSOLE_SECRET_1") == 1
    with opened(db_path) as db:
        stored = dump(db)
    for text in ((tmp_path / "cmdline").read_text(), proc.stdout, proc.stderr, stored):
        for form in forms:
            assert form not in text, (form, text[:2000])
    # On the command line it is refused, with the way to pass it.
    bad = cli_subprocess(
        "--config",
        str(config_dir),
        "runbook",
        "run",
        str(rb),
        "--var",
        f"key={SECRET}",
        env={"OPSCONSOLE_DB": str(db_path)},
    )
    assert bad.returncode == 2
    assert "OPSCONSOLE_VAR_KEY" in bad.stderr


def test_a_secret_shorter_than_the_redaction_minimum_is_refused(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    rb = tmp_path / "short.yaml"
    rb.write_text(
        "name: short\nparams: {pin: {secret: true}}\nsteps:\n  - {id: a, shell: 'true'}\n"
    )
    proc = cli_subprocess(
        "--config",
        str(config_dir),
        "runbook",
        "run",
        str(rb),
        env={"OPSCONSOLE_DB": str(db_path), "OPSCONSOLE_VAR_PIN": "123"},
    )
    assert proc.returncode != 0
    assert "at least 4 characters" in proc.stderr
    assert "Traceback" not in proc.stderr
