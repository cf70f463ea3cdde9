"""Inventory hosts ready to connect to: paths resolved against the config directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsconsole.errors import NotFoundError

if TYPE_CHECKING:
    from opsconsole.config import Config, Host

__all__ = ["resolve_host", "resolve_hosts"]


def _resolved(config: Config, host: Host) -> Host:
    known_hosts = config.resolve(host.known_hosts) or config.resolve(config.inventory.known_hosts)
    return host.model_copy(
        update={"key_file": config.resolve(host.key_file), "known_hosts": known_hosts}
    )


def resolve_hosts(config: Config, target: str) -> dict[str, Host]:
    """Hosts matching ``target`` (alias, group or region) with absolute key/known_hosts paths.

    ``known_hosts`` is the host's own file, else the inventory default; when both are
    unset it stays ``None`` and connections use ~/.ssh/known_hosts.
    """
    return {
        alias: _resolved(config, host)
        for alias, host in config.inventory.hosts_matching(target).items()
    }


def resolve_host(config: Config, alias: str) -> Host:
    """One inventory host by alias; :class:`NotFoundError` naming the known aliases."""
    try:
        _, host = config.inventory.host(alias)
    except KeyError:
        known = sorted(a for r in config.inventory.regions.values() for a in r.hosts)
        raise NotFoundError(
            f"no host {alias!r} in the inventory"
            + (f"; known hosts: {', '.join(known)}" if known else " (it defines no hosts)")
        ) from None
    return _resolved(config, host)
