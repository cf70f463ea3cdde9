"""Inventory and settings: pydantic models, and loading them from a config directory.

A config directory holds ``inventory.yaml`` (regions -> services -> endpoints, and
hosts) and optionally ``settings.yaml``. Every validation error names file, line,
column and field path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from opsconsole.auditing.settings import AuditSettings
from opsconsole.errors import ConfigError, SourceError, SourceLocation
from opsconsole.paths import config_dir_candidates, default_db_path
from opsconsole.yamlsource import Marks, format_field, load_yaml, validate

__all__ = [
    "Channel",
    "Config",
    "Endpoint",
    "Host",
    "Inventory",
    "Notifications",
    "Region",
    "Service",
    "Settings",
    "TimeZoneName",
    "find_config_dir",
    "load_config",
]


def _known_zone(value: str) -> str:
    shown = value if len(value) <= 60 else value[:57] + "..."
    try:
        if len(value) > 255:  # no zone name is this long (and the OS would refuse the path)
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {shown!r}") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time zone name such as Europe/Berlin, checked on load."""

NAME = r"^[a-z0-9][a-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StatusRange(Strict):
    """An inclusive HTTP status range such as 200-299."""

    low: int = Field(ge=100, le=599)
    high: int = Field(ge=100, le=599)


def _parse_status(value: Any) -> Any:
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d{3})\s*-\s*(\d{3})\s*", value)
        if m:
            return [{"low": int(m[1]), "high": int(m[2])}]
        if re.fullmatch(r"\d{3}", value.strip()):
            return [int(value)]
        raise ValueError(
            f"status must be a code, a list of codes or a range like 200-299, not {value!r}"
        )
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            out.extend(_parse_status(item))
        return out
    return value


class Expect(Strict):
    """What a successful probe looks like."""

    status: list[Annotated[int, Field(ge=100, le=599)] | StatusRange] = Field(
        default_factory=lambda: [StatusRange(low=200, high=399)]
    )
    body_contains: str | None = None
    json_equals: dict[str, Any] = Field(
        default_factory=dict, description="dotted JSON path -> expected value"
    )
    output_contains: str | None = Field(None, description="for SSH checks: stdout must contain")

    _status = field_validator("status", mode="before")(_parse_status)

    def status_ok(self, code: int) -> bool:
        for s in self.status:
            if isinstance(s, StatusRange):
                if s.low <= code <= s.high:
                    return True
            elif s == code:
                return True
        return False


class SshCheck(Strict):
    host: str
    command: str


class Endpoint(Strict):
    """One thing to probe: an HTTP(S) URL, a TCP host:port, or an SSH check command."""

    name: Name = "default"
    url: AnyHttpUrl | None = None
    tcp: str | None = Field(None, pattern=r"^[^\s:]+:\d{1,5}$", description="host:port")
    ssh: SshCheck | None = None
    expect: Expect = Field(default_factory=Expect)
    timeout_seconds: float | None = Field(None, gt=0, le=300)
    latency_threshold_ms: float | None = Field(None, gt=0)
    phases: bool = Field(False, description="record DNS/connect/TLS/TTFB/transfer timings")
    verify_tls: bool = True
    ca_file: Path | None = None
    follow_redirects: bool = Field(
        False, description="follow up to 10 redirects and judge the final response"
    )

    @model_validator(mode="after")
    def _exactly_one_target(self) -> Endpoint:
        given = [k for k in ("url", "tcp", "ssh") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "an endpoint needs exactly one of url, tcp or ssh"
                + (f" (has {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> Literal["http", "tcp", "ssh"]:
        if self.url is not None:
            return "http"
        if self.tcp is not None:
            return "tcp"
        return "ssh"


class Objectives(Strict):
    latency_ms: float = Field(500, gt=0, description="p95 above this is degraded")
    availability: float = Field(99.9, gt=0, le=100, description="target, percent")


class Service(Strict):
    critical: bool = True
    description: str = ""
    objectives: Objectives = Field(default_factory=Objectives)
    endpoints: list[Endpoint] = Field(min_length=1)


class Host(Strict):
    """An SSH-reachable machine."""

    address: str
    port: int = Field(22, ge=1, le=65535)
    user: str = "root"
    key_file: Path | None = None
    known_hosts: Path | None = Field(
        None, description="known_hosts file to verify the host key against"
    )
    groups: list[Name] = Field(default_factory=list)


class Region(Strict):
    name: str = Field(description="human name, e.g. Singapore")
    timezone: TimeZoneName = "UTC"
    standby: Name | None = None
    environment: Literal["production", "staging", "demo", "test"] = "production"
    prometheus_url: AnyHttpUrl | None = Field(
        None, description="Prometheus HTTP API for blackbox_exporter metrics of this region"
    )
    services: dict[Name, Service] = Field(default_factory=dict)
    hosts: dict[Name, Host] = Field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Inventory(Strict):
    regions: dict[Name, Region] = Field(min_length=1)
    known_hosts: Path | None = Field(None, description="default known_hosts for every host")
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="free-form values for runbook templates (inventory.vars.NAME), "
        "e.g. the traffic router's admin URL",
    )

    def host(self, alias: str) -> tuple[str, Host]:
        for region_id, region in self.regions.items():
            if alias in region.hosts:
                return region_id, region.hosts[alias]
        raise KeyError(alias)

    def hosts_matching(self, target: str) -> dict[str, Host]:
        """Hosts named ``target``, or in group ``target``, or in region ``target``."""
        out: dict[str, Host] = {}
        for region_id, region in self.regions.items():
            for alias, host in region.hosts.items():
                if target in (alias, region_id) or target in host.groups:
                    out[alias] = host
        return out


class Hysteresis(Strict):
    down_after: int = Field(3, ge=1, description="consecutive failures before down")
    recover_after: int = Field(2, ge=1, description="consecutive successes before ok")


class Flapping(Strict):
    window: int = Field(20, ge=2, description="probes looked at")
    threshold: int = Field(8, ge=1, description="result changes in the window that mean flapping")


class ProbeSettings(Strict):
    interval_seconds: float = Field(10, gt=0)
    timeout_seconds: float = Field(5, gt=0)
    concurrency: int = Field(100, ge=1)
    per_host_concurrency: int = Field(10, ge=1)
    window: int = Field(60, ge=1, description="samples kept per target for statistics")
    hysteresis: Hysteresis = Field(default_factory=Hysteresis)
    flapping: Flapping = Field(default_factory=Flapping)
    raw_retention_minutes: int = Field(60, ge=1)
    rollup_retention_days: int = Field(30, ge=1)


class HostThresholds(Strict):
    cpu_percent: float = 90
    memory_percent: float = 90
    disk_percent: float = 90
    load_per_cpu: float = 2.0


class Webhook(Strict):
    name: Name
    url: AnyHttpUrl
    format: Literal["generic", "slack"] = "generic"
    events: list[str] = Field(default_factory=lambda: ["*"])


class Channel(Strict):
    """One notification channel of the outbox (see :mod:`opsconsole.outbox`).

    ``apprise``: ``url`` is an Apprise URL (slack://, msteams://, mailto://, json://, ...);
    a ``{secret}`` in it is replaced by the value of ``secret_env`` or ``secret_file`` so the
    token never sits in settings.yaml. ``pagerduty``: Events API v2; the secret is the
    integration's routing key and ``url`` may point elsewhere than PagerDuty's endpoint.
    """

    name: Name
    kind: Literal["apprise", "pagerduty"] = "apprise"
    url: str | None = None
    secret_env: str | None = Field(None, description="environment variable holding the secret")
    secret_file: Path | None = Field(None, description="file holding the secret")
    events: list[str] = Field(
        default_factory=lambda: ["*"], description="fnmatch patterns of outbox events"
    )

    @model_validator(mode="after")
    def _complete(self) -> Channel:
        if self.secret_env and self.secret_file:
            raise ValueError("give secret_env or secret_file, not both")
        has_secret = bool(self.secret_env or self.secret_file)
        if self.kind == "apprise":
            if not self.url:
                raise ValueError("an apprise channel needs url")
            if "{secret}" in self.url and not has_secret:
                raise ValueError("url uses {secret}: set secret_env or secret_file")
        elif not has_secret:
            raise ValueError("a pagerduty channel needs its routing key: secret_env or secret_file")
        return self


def _unique_names(items: list[Any], what: str) -> list[Any]:
    """Channels and webhooks are addressed by name (``notify test NAME``, delivery
    records): two with one name would make that ambiguous."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in seen:
            raise ValueError(
                f"{what} name {item.name!r} is used twice ([{seen[item.name]}] and [{i}]); "
                "rename one"
            )
        seen[item.name] = i
    return items


class Notifications(Strict):
    channels: list[Channel] = Field(default_factory=list)
    max_attempts: int = Field(6, ge=1, le=100, description="tries before a message is dead")
    backoff_initial_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(60.0, gt=0)
    poll_seconds: float = Field(1.0, gt=0, description="how often serve looks for new messages")
    deadline_warning_minutes: float = Field(
        60, gt=0, description="remind this long before an incident deadline is due"
    )
    retention_days: float = Field(
        90, gt=0, description="sent and skipped messages older than this are removed"
    )

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[Channel]) -> list[Channel]:
        return _unique_names(value, "channel")


class Settings(Strict):
    database: str | None = Field(
        None,
        description="the store: a SQLite file (relative to the config directory) or a "
        "postgresql:// URL (team mode; keep the password in ~/.pgpass or a service file)",
    )
    shared_group: str | None = Field(
        None,
        description="shared host: OS group whose members share the database; its directory "
        "and files (WAL and SHM included) are created group-writable for it",
    )
    audit_key_file: Path | None = None
    runbook_dirs: list[Path] = Field(default_factory=list)
    playbook_dirs: list[Path] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    notifications: Notifications = Field(default_factory=Notifications)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    host: HostThresholds = Field(default_factory=HostThresholds)
    secret_env: list[str] = Field(
        default_factory=list, description="environment variables whose values are secrets"
    )
    audit: AuditSettings = Field(default_factory=AuditSettings)
    lease_seconds: float = Field(
        30.0,
        ge=1,
        description="leases (run locks, run owners, the scheduler): a holder that has not "
        "renewed its lease for this long is stale and may be taken over from any host",
    )

    @field_validator("webhooks")
    @classmethod
    def _unique_webhooks(cls, value: list[Webhook]) -> list[Webhook]:
        return _unique_names(value, "webhook")


@dataclass(frozen=True)
class Config:
    """A loaded config directory."""

    directory: Path
    inventory: Inventory
    settings: Settings

    def resolve(self, path: Path | None) -> Path | None:
        """Paths in config files are relative to the config directory."""
        if path is None:
            return None
        path = path.expanduser()
        return path if path.is_absolute() else (self.directory / path)

    @property
    def database(self) -> Path | str:
        """The configured store: a PostgreSQL URL as written, a file relative to here."""
        from opsconsole.store.postgres import is_postgres_url

        value = self.settings.database
        if value is None:
            return default_db_path()
        if is_postgres_url(value):
            return value
        return self.resolve(Path(value)) or default_db_path()


def find_config_dir(explicit: Path | None = None) -> Path:
    tried: list[str] = []
    for source, path in config_dir_candidates(explicit):
        if (path / "inventory.yaml").is_file():
            return path
        tried.append(f"{path} ({source})")
        if source in ("--config", "OPSCONSOLE_CONFIG"):
            import os

            # Click fills --config from OPSCONSOLE_CONFIG: name the one the user set.
            if source == "--config" and os.environ.get("OPSCONSOLE_CONFIG") == str(explicit):
                source = "OPSCONSOLE_CONFIG"
            raise ConfigError(
                [
                    (
                        SourceLocation(str(path / "inventory.yaml")),
                        "",
                        f"no inventory.yaml (from {source}); point it at a config directory "
                        "(`opsconsole config init DIR` writes the example there)",
                    )
                ]
            )
    raise ConfigError(
        [
            (
                SourceLocation("inventory.yaml"),
                "",
                "no config directory found; tried "
                + ", ".join(tried)
                + ". Pass --config DIR or run `opsconsole demo` for a ready-made one.",
            )
        ]
    )


def _cross_check(inv: Inventory, marks: Marks) -> None:
    problems: list[tuple[SourceLocation, str, str]] = []

    def add(path: tuple[str | int, ...], msg: str) -> None:
        problems.append((marks.locate(path), format_field(path), msg))

    aliases: dict[str, str] = {}
    for rid, region in inv.regions.items():
        if region.standby is not None:
            if region.standby not in inv.regions:
                add(("regions", rid, "standby"), f"unknown region {region.standby!r}")
            elif region.standby == rid:
                add(("regions", rid, "standby"), "a region cannot be its own standby")
        for alias in region.hosts:
            if alias in aliases:
                add(
                    ("regions", rid, "hosts", alias),
                    f"host alias also defined in region {aliases[alias]!r}",
                )
            aliases[alias] = rid
    for rid, region in inv.regions.items():
        for sid, svc in region.services.items():
            for i, ep in enumerate(svc.endpoints):
                if ep.ssh is not None and ep.ssh.host not in aliases:
                    add(
                        ("regions", rid, "services", sid, "endpoints", i, "ssh", "host"),
                        f"unknown host {ep.ssh.host!r}",
                    )
    if problems:
        raise ConfigError(problems)


def load_config(explicit: Path | None = None) -> Config:
    directory = find_config_dir(explicit)
    inv_path = directory / "inventory.yaml"
    try:
        data, marks = load_yaml(inv_path)
        inventory = validate(Inventory, data if data is not None else {}, marks)
        _cross_check(inventory, marks)
        settings_path = directory / "settings.yaml"
        if settings_path.is_file():
            sdata, smarks = load_yaml(settings_path)
            settings = validate(Settings, sdata if sdata is not None else {}, smarks)
        else:
            settings = Settings()
    except ConfigError:
        raise
    except SourceError as exc:
        raise ConfigError(exc.problems) from None
    return Config(directory=directory, inventory=inventory, settings=settings)
