"""Posting messages to the webhooks configured in settings (``Settings.webhooks``).

Two formats: ``generic`` posts ``{"event", "text", "data", "sent_at", "source"}``;
``slack`` posts ``{"text": ...}`` (Slack, Mattermost, Rocket.Chat and most chat tools
accept it). Each webhook's ``events`` list (fnmatch patterns, default ``["*"]``) says
which events it receives. Text and data are redacted before they leave the process.
Delivery failures are returned, never raised: a notifier must not break the caller.

API (also used by the runbook engine's ``notify`` step)::

    deliveries = await post_event(settings.webhooks, "health.state_changed", text, data)
    delivery = await post(webhook, text, data=..., event="runbook.notify")
    webhook = find_webhook(settings, "oncall")   # NotFoundError naming the known ones
"""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsconsole.errors import NotFoundError
from opsconsole.redact import redact
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    import httpx

    from opsconsole.config import Settings, Webhook

__all__ = ["Delivery", "find_webhook", "payload", "post", "post_event", "wants"]


@dataclass(frozen=True)
class Delivery:
    webhook: str
    url: str
    ok: bool
    status_code: int | None = None
    error: str | None = None


def find_webhook(settings: Settings, name: str) -> Webhook:
    for hook in settings.webhooks:
        if hook.name == name:
            return hook
    known = ", ".join(h.name for h in settings.webhooks) or "none configured"
    raise NotFoundError(f"no webhook named {name!r} in settings (known: {known})")


def wants(webhook: Webhook, event: str) -> bool:
    """Whether ``webhook`` subscribes to ``event`` (its ``events`` patterns)."""
    return any(fnmatch.fnmatchcase(event, pat) for pat in webhook.events)


def payload(webhook: Webhook, text: str, data: dict[str, Any] | None, event: str) -> dict[str, Any]:
    """The JSON body for ``webhook``'s format (already redacted)."""
    text = str(redact(text))
    if webhook.format == "slack":
        return {"text": text}
    return {
        "event": event,
        "text": text,
        "data": redact(data or {}),
        "sent_at": isoformat(utcnow()),
        "source": "opsconsole",
    }


async def post(
    webhook: Webhook,
    text: str,
    *,
    data: dict[str, Any] | None = None,
    event: str = "message",
    client: httpx.AsyncClient | None = None,
    timeout: float = 5.0,
) -> Delivery:
    """POST one message; a non-2xx answer or a network error is a failed Delivery."""
    import httpx

    url = str(webhook.url)
    body = payload(webhook, text, data, event)
    own = client is None
    cl = client or httpx.AsyncClient(trust_env=False)
    try:
        resp = await cl.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        return Delivery(webhook.name, url, False, error=f"{type(exc).__name__}: {exc}")
    finally:
        if own:
            await cl.aclose()
    ok = 200 <= resp.status_code < 300
    return Delivery(
        webhook.name, url, ok, resp.status_code, None if ok else f"HTTP {resp.status_code}"
    )


async def post_event(
    webhooks: list[Webhook],
    event: str,
    text: str,
    data: dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
) -> list[Delivery]:
    """Post to every webhook that wants ``event``, concurrently."""
    chosen = [w for w in webhooks if wants(w, event)]
    if not chosen:
        return []
    import httpx

    async with httpx.AsyncClient(trust_env=False) as client:
        return list(
            await asyncio.gather(
                *(
                    post(w, text, data=data, event=event, client=client, timeout=timeout)
                    for w in chosen
                )
            )
        )
