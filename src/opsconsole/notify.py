"""Posting messages: to the webhooks configured in settings (``Settings.webhooks``, used by
the runbook ``notify`` step and the health monitor), and to the outbox's channels
(``Settings.notifications.channels``: Apprise URLs, PagerDuty Events API v2), see
:func:`send` and :mod:`opsconsole.delivery`.

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

    from opsconsole.config import Channel, Config, Settings, Webhook
    from opsconsole.outbox import Message

__all__ = [
    "PAGERDUTY_URL",
    "Delivery",
    "DeliveryFailed",
    "channel_secret",
    "channel_wants",
    "check_channel_urls",
    "find_webhook",
    "pagerduty_event",
    "payload",
    "post",
    "post_event",
    "send",
    "wants",
]

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


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


# --- outbox channels -------------------------------------------------------------------


class DeliveryFailed(Exception):
    """One channel did not take a message (the worker retries)."""


def channel_wants(channel: Channel, event: str) -> bool:
    return any(fnmatch.fnmatchcase(event, pat) for pat in channel.events)


def channel_secret(channel: Channel, config: Config) -> str | None:
    """The channel's secret from its environment variable or file; registered so that it
    is masked wherever it could appear (errors, the audit log, ``notify list``)."""
    import os

    from opsconsole.errors import ConfigError, SourceLocation
    from opsconsole.redact import secrets

    value: str | None = None
    if channel.secret_env:
        value = os.environ.get(channel.secret_env)
        if not value:
            raise ConfigError(
                [
                    (
                        SourceLocation(str(config.directory / "settings.yaml")),
                        f"notifications.channels.{channel.name}.secret_env",
                        f"environment variable {channel.secret_env} is not set",
                    )
                ]
            )
    elif channel.secret_file:
        path = config.resolve(channel.secret_file)
        assert path is not None
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [
                    (
                        SourceLocation(str(path)),
                        f"notifications.channels.{channel.name}.secret_file",
                        f"cannot read: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}",
                    )
                ]
            ) from None
    if value:
        secrets.add(value)
    return value


_PD_SEVERITY = {"SEV1": "critical", "SEV2": "error", "SEV3": "warning", "SEV4": "info"}


def check_channel_urls(config: Config) -> None:
    """Refuse an Apprise channel whose URL scheme no Apprise service handles (a typo such
    as ``slak://``), before serve queues messages that could only ever go ``dead``.

    Only the scheme is checked: the rest may hold ``{secret}``, which is not read here."""
    from apprise.manager_plugins import NotificationManager

    from opsconsole.errors import ConfigError, SourceLocation

    known = NotificationManager().schemas()
    problems = []
    for i, channel in enumerate(config.settings.notifications.channels):
        if channel.kind != "apprise" or channel.url is None:
            continue
        scheme = channel.url.split("://", 1)[0].lower() if "://" in channel.url else ""
        if scheme not in known:
            problems.append(
                (
                    SourceLocation(str(config.directory / "settings.yaml")),
                    f"notifications.channels[{i}].url",
                    (
                        f"{channel.name}: no Apprise service has the scheme {scheme}://"
                        if scheme
                        else f"{channel.name}: not a URL (SCHEME://...)"
                    )
                    + "; use one Apprise supports, e.g. slack://, mailtos://, json:// "
                    "(https://github.com/caronc/apprise/wiki)",
                )
            )
    if problems:
        raise ConfigError(problems)


def pagerduty_event(message: Message, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body. Every message about one incident carries the same
    ``dedup_key`` (``opsconsole/<incident>``), so trigger, acknowledge and resolve act on
    one PagerDuty alert; health changes use ``opsconsole/health/<key>``."""
    data = message.data
    if data.get("incident"):
        dedup = f"opsconsole/{data['incident']}"
        status = data.get("status")
        if message.event == "incident.status_changed" and status in ("resolved", "closed"):
            action = "resolve"
        elif message.event == "incident.status_changed" and status in (
            "investigating",
            "mitigated",
        ):
            action = "acknowledge"
        else:
            action = "trigger"
        severity = _PD_SEVERITY.get(str(data.get("severity")), "error")
    elif message.event == "health.changed":
        dedup = f"opsconsole/health/{data.get('key')}"
        action = "resolve" if data.get("new") == "ok" else "trigger"
        severity = "critical" if data.get("new") == "down" else "warning"
    else:
        dedup = f"opsconsole/{message.event}/{message.subject}"
        action = "trigger"
        severity = "error"
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup,
    }
    if action == "trigger":
        body["payload"] = {
            "summary": str(redact(f"{message.title}: {message.body}"))[:1024],
            "source": "opsconsole",
            "severity": severity,
            "component": str(data.get("service") or data.get("key") or message.subject),
            "group": str(data.get("region") or ""),
            "class": message.event,
            "custom_details": redact(data),
        }
    return body


def _apprise_send(url: str, title: str, body: str) -> None:
    import apprise

    obj = apprise.Apprise()
    if not obj.add(url):
        raise DeliveryFailed("not a valid Apprise URL for any service it supports")
    result = obj.notify(title=title, body=body)
    if not result:
        # Apprise's own per-call log says why (HTTP status, SMTP refusal, timeout, ...).
        reasons = [
            e.message
            for e in getattr(result, "logs", lambda: [])()
            if e.level in ("WARNING", "ERROR", "CRITICAL")
        ]
        raise DeliveryFailed(str(redact("; ".join(reasons[-2:]) or "the service refused it")))


async def send(
    channel: Channel, message: Message, secret: str | None, *, timeout: float = 10.0
) -> None:
    """Send one outbox message to one channel; raise :class:`DeliveryFailed` if it did not
    take it (an error text with the secret masked)."""
    if channel.kind == "pagerduty":
        import httpx

        assert secret is not None
        url = channel.url or PAGERDUTY_URL
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=timeout) as client:
                resp = await client.post(url, json=pagerduty_event(message, secret))
        except httpx.HTTPError as exc:
            raise DeliveryFailed(str(redact(f"{type(exc).__name__}: {exc}"))) from None
        if not 200 <= resp.status_code < 300:
            raise DeliveryFailed(f"PagerDuty answered HTTP {resp.status_code}")
        return
    assert channel.url is not None
    url = channel.url.replace("{secret}", secret) if secret else channel.url
    title = str(redact(message.title))
    body = str(redact(message.body))
    await asyncio.to_thread(_apprise_send, url, title, body)
