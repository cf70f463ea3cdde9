"""HTTP steps against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from opsconsole.runbooks import start_run
from opsconsole.runbooks.state import get_steps


class Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, object]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(5)
        if self.path.startswith("/missing"):
            self._reply(404, {"error": "nope"})
            return
        self._reply(200, {"status": "ok", "nested": {"items": [1, 2]}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        Handler.seen.append({"auth": self.headers.get("Authorization"), "body": body})
        if self.headers.get("Authorization") != "Bearer tok-abcdef-123":
            self._reply(401, {"error": "bad key"})
            return
        self._reply(200, {"token": "issued-new-token-999", "echo": body})


@pytest.fixture
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


async def test_http_expectations_and_outputs(env, operator, write_runbook, server):
    rb = write_runbook(f"""
        name: http
        params:
          key: {{secret: true}}
        steps:
          - id: get
            http:
              url: "{server}/health"
              expect:
                status: 200
                json_equals: {{status: ok, nested.items.1: 2}}
                body_contains: ok
          - id: post
            http:
              method: post
              url: "{server}/do"
              bearer_token: "{{{{ key }}}}"
              json:
                count: "{{{{ steps.get.json.nested['items'] | length }}}}"
                who: "{{{{ run.actor }}}}"
            register: posted
          - id: use
            shell: ["echo", "{{{{ posted.status_code }}}}"]
        """)
    result = await start_run(rb, {"key": "tok-abcdef-123"}, env=env, operator=operator)
    assert result.status == "succeeded", result.error
    assert Handler.seen[-1]["body"] == {"count": 2, "who": "alice"}
    stored = json.dumps([s.__dict__ for s in get_steps(env.db, result.run_id)])
    assert "tok-abcdef-123" not in stored
    assert "issued-new-token-999" not in stored  # learned as a secret from the response
    audit = json.dumps([list(r) for r in env.db.execute("SELECT * FROM audit_events")])
    assert "tok-abcdef-123" not in audit and "issued-new-token-999" not in audit


async def test_http_unexpected_status_fails_with_reason(env, operator, write_runbook, server):
    rb = write_runbook(f"""
        name: http404
        steps:
          - id: get
            http: {{url: "{server}/missing", expect: {{status: 200}}}}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "failed"
    assert "status 404 not in [200]" in (result.error or "")


async def test_http_json_mismatch_fails(env, operator, write_runbook, server):
    rb = write_runbook(f"""
        name: httpjson
        steps:
          - id: get
            http: {{url: "{server}/x", expect: {{json_equals: {{status: down}}}}}}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "failed"
    assert "JSON status is 'ok', expected 'down'" in (result.error or "")


async def test_http_timeout_is_timed_out(env, operator, write_runbook, server):
    rb = write_runbook(f"""
        name: httpslow
        steps:
          - id: get
            timeout: 1
            http: {{url: "{server}/slow"}}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "timed_out"
