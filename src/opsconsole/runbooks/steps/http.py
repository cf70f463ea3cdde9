"""``http``: one request through httpx, with expected status / body / JSON conditions."""

from __future__ import annotations

import json
from typing import Any

from opsconsole.redact import is_secret_key, redact, secrets
from opsconsole.runbooks.schema import HttpAction
from opsconsole.runbooks.steps import Outcome, StepContext
from opsconsole.templating import render as render_text
from opsconsole.templating import render_obj, render_url

__all__ = ["execute", "json_path", "render"]

DEFAULT_TIMEOUT = 30.0
_MISSING = object()


def render(spec: HttpAction, tctx: dict[str, Any]) -> dict[str, Any]:
    headers = {k: render_text(v, tctx) for k, v in spec.headers.items()}
    if spec.bearer_token is not None:
        token = render_text(spec.bearer_token, tctx)
        secrets.add(token)
        headers["Authorization"] = f"Bearer {token}"
    out: dict[str, Any] = {
        "method": spec.method,
        "url": render_url(spec.url, tctx),
        "headers": headers,
        "expect": {
            "status": list(spec.expect.status),
            "body_contains": render_text(spec.expect.body_contains, tctx)
            if spec.expect.body_contains
            else None,
            "json_equals": render_obj(spec.expect.json_equals, tctx),
        },
        "verify_tls": spec.verify_tls,
    }
    if spec.params:
        out["params"] = {k: render_text(v, tctx) for k, v in spec.params.items()}
    if spec.json_body is not None:
        out["json"] = render_obj(spec.json_body, tctx)
    if spec.body is not None:
        out["body"] = render_text(spec.body, tctx)
    return out


def json_path(data: Any, path: str) -> Any:
    """``a.b.0.c`` into nested dicts/lists; a missing part gives a sentinel."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif (
            isinstance(cur, list)
            and part.lstrip("-").isdigit()
            and -len(cur) <= int(part) < len(cur)
        ):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def _learn_secrets(data: Any) -> None:
    """Values under secret-looking keys in a response (a rotated API key, a token) are
    secrets from now on: registered before anything prints or stores the body."""
    if isinstance(data, dict):
        for key, val in data.items():
            if isinstance(key, str) and is_secret_key(key) and isinstance(val, str):
                secrets.add(val)
            else:
                _learn_secrets(val)
    elif isinstance(data, list):
        for item in data:
            _learn_secrets(item)


async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
    import httpx

    timeout = ctx.timeout or DEFAULT_TIMEOUT
    kwargs: dict[str, Any] = {"headers": rendered["headers"], "params": rendered.get("params")}
    if "json" in rendered:
        kwargs["json"] = rendered["json"]
    elif "body" in rendered:
        kwargs["content"] = rendered["body"].encode()
    method, url = rendered["method"], rendered["url"]
    try:
        async with httpx.AsyncClient(timeout=timeout, verify=rendered["verify_tls"]) as client:
            resp = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        return Outcome("timed_out", {}, "", f"{method} {url}: timed out ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Outcome("failed", {}, "", f"{method} {url}: {exc or type(exc).__name__}")
    body = resp.text
    value: dict[str, Any] = {
        "status_code": resp.status_code,
        "body": body,
        "headers": dict(resp.headers),
    }
    try:
        value["json"] = resp.json()
    except (ValueError, json.JSONDecodeError):
        value["json"] = None
    _learn_secrets(value["json"])
    ctx.emit(redact(f"-> {resp.status_code} {body[:500]}"), "stdout", None)
    problems = []
    expect = rendered["expect"]
    if resp.status_code not in expect["status"]:
        problems.append(f"status {resp.status_code} not in {expect['status']}")
    if expect["body_contains"] and expect["body_contains"] not in body:
        problems.append(f"body does not contain {expect['body_contains']!r}")
    for path, want in (expect["json_equals"] or {}).items():
        got = json_path(value["json"], path)
        if got is _MISSING:
            problems.append(f"JSON has no {path}")
        elif got != want:
            problems.append(f"JSON {path} is {got!r}, expected {want!r}")
    text = f"{resp.status_code}\n{body}"
    if problems:
        return Outcome("failed", value, text, f"{method} {url}: " + "; ".join(problems))
    return Outcome("succeeded", value, text)
