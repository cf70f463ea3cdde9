"""The SSH layer: run commands on inventory hosts with verified host keys and real timeouts.

Used by the runbook engine's ``ssh`` steps, the health SSH probe, ``opsconsole ssh`` and
``bench/fanout.py``. Importing this package does not import paramiko.
"""

from __future__ import annotations

from opsconsole.ssh.client import (
    CommandResult,
    OutputCallback,
    remote_command,
    run_command,
    run_command_async,
)
from opsconsole.ssh.connection import connect
from opsconsole.ssh.errors import (
    HostKeyChanged,
    HostKeyUnknown,
    SshAuthError,
    SshConnectError,
    SshError,
)
from opsconsole.ssh.fanout import (
    FanoutOutputCallback,
    FanoutResult,
    run_on_hosts,
    run_on_hosts_async,
)
from opsconsole.ssh.hostkeys import (
    HostKeyInfo,
    effective_known_hosts,
    fetch_host_key,
    fingerprint,
    known_hosts_name,
    trust_host,
)
from opsconsole.ssh.hosts import resolve_host, resolve_hosts

__all__ = [
    "CommandResult",
    "FanoutOutputCallback",
    "FanoutResult",
    "HostKeyChanged",
    "HostKeyInfo",
    "HostKeyUnknown",
    "OutputCallback",
    "SshAuthError",
    "SshConnectError",
    "SshError",
    "connect",
    "effective_known_hosts",
    "fetch_host_key",
    "fingerprint",
    "known_hosts_name",
    "remote_command",
    "resolve_host",
    "resolve_hosts",
    "run_command",
    "run_command_async",
    "run_on_hosts",
    "run_on_hosts_async",
    "trust_host",
]
