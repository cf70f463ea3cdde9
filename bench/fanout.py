"""Fan-out benchmark: one command on N host aliases of a loopback sshd.

Compares, in the same run and against the same sshd:

- opsconsole ``run_on_hosts`` (forks = N): host-key verification, remote ``timeout``
  wrapper, output draining and bounds;
- a minimal paramiko ``ThreadPoolExecutor`` baseline (connect, exec, read, close) —
  target: opsconsole / baseline <= 1.2;
- ``ansible all -f N -m command`` when ``ansible`` is on PATH (or ``--ansible PATH``), with
  SSH multiplexing off so that N aliases behave like N hosts.

Usage: python bench/fanout.py [--hosts 50] [--rounds 5] [--command 'uname -a'] [--ansible PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from opsconsole.config import Host
from opsconsole.ssh import run_on_hosts
from opsconsole.testing.sshd import LoopbackSshd


def run_opsconsole(hosts: dict[str, Host], command: str) -> int:
    res = run_on_hosts(hosts, command, forks=len(hosts), timeout=120)
    return sum(1 for r in res.results.values() if r.ok)


def run_baseline(hosts: dict[str, Host], command: str) -> int:
    """What a careful script would do with bare paramiko (known_hosts verified too)."""
    import paramiko

    def one(host: Host) -> bool:
        client = paramiko.SSHClient()
        client.load_host_keys(str(host.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                host.address,
                port=host.port,
                username=host.user,
                key_filename=str(host.key_file),
                look_for_keys=False,
                timeout=120,
            )
            _, stdout, stderr = client.exec_command(command, timeout=120)
            stdout.read()
            stderr.read()
            return stdout.channel.recv_exit_status() == 0
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return sum(pool.map(one, hosts.values()))


def ansible_runner(  # type: ignore[no-untyped-def]
    ansible: str, sshd: LoopbackSshd, aliases: list[str], workdir: Path, pipelining: bool
):
    inventory = workdir / "ansible-hosts.ini"
    lines = ["[all]"]
    for alias in aliases:
        lines.append(
            f"{alias} ansible_host={sshd.address} ansible_port={sshd.port} "
            f"ansible_user={sshd.user} ansible_ssh_private_key_file={sshd.key_file}"
        )
    lines += [
        "[all:vars]",
        "ansible_python_interpreter=/usr/bin/python3",
        f"ansible_ssh_common_args='-o UserKnownHostsFile={sshd.known_hosts} "
        "-o StrictHostKeyChecking=yes'",
    ]
    inventory.write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPath=none",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "0",
            "ANSIBLE_PIPELINING": str(pipelining),
        }
    )

    def run(command: str) -> int:
        proc = subprocess.run(
            [
                ansible,
                "all",
                "-i",
                str(inventory),
                "-f",
                str(len(aliases)),
                "-m",
                "command",
                "-a",
                command,
                "-o",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        ok = sum(1 for ln in proc.stdout.splitlines() if "| CHANGED" in ln or "| SUCCESS" in ln)
        if ok != len(aliases):
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        return ok

    return run


def timed(fn, *args) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Wall time, this process's CPU time (client-side cost), hosts that succeeded."""
    start, cpu = time.perf_counter(), time.process_time()
    ok = fn(*args)
    return time.perf_counter() - start, time.process_time() - cpu, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--command", default="uname -a")
    ap.add_argument("--ansible", default=shutil.which("ansible"), help="ansible executable")
    ap.add_argument("--ansible-rounds", type=int, default=2)
    ap.add_argument("--ansible-pipelining", action="store_true", help="ANSIBLE_PIPELINING=True")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="opsconsole-bench-") as tmp:
        workdir = Path(tmp)
        with LoopbackSshd(workdir / "sshd", max_startups=max(200, 4 * args.hosts)) as sshd:
            hosts = sshd.hosts(args.hosts)
            print(
                f"sshd on 127.0.0.1:{sshd.port}; {args.hosts} host aliases; "
                f"command {args.command!r}; {os.cpu_count()} CPUs"
            )
            timed(run_baseline, dict(list(hosts.items())[:2]), args.command)  # warm up imports
            times: dict[str, list[float]] = {"opsconsole": [], "paramiko-baseline": []}
            cpu: dict[str, list[float]] = {"opsconsole": [], "paramiko-baseline": []}
            for rnd in range(args.rounds):
                # alternate the order so neither side always runs on a warmer machine
                order = [("opsconsole", run_opsconsole), ("paramiko-baseline", run_baseline)]
                for name, fn in order if rnd % 2 == 0 else order[::-1]:
                    secs, cpu_secs, ok = timed(fn, hosts, args.command)
                    if ok != args.hosts:
                        print(f"  {name}: only {ok}/{args.hosts} hosts succeeded", file=sys.stderr)
                        return 1
                    times[name].append(secs)
                    cpu[name].append(cpu_secs)
                    print(
                        f"  round {rnd + 1} {name:18s} {secs:6.2f} s  (client CPU {cpu_secs:.2f} s)"
                    )
            if args.ansible:
                run = ansible_runner(
                    args.ansible, sshd, list(hosts), workdir, args.ansible_pipelining
                )
                times["ansible"] = []
                for rnd in range(args.ansible_rounds):
                    secs, _, ok = timed(run, args.command)
                    if ok != args.hosts:
                        print(f"  ansible: only {ok}/{args.hosts} hosts succeeded", file=sys.stderr)
                        return 1
                    times["ansible"].append(secs)
                    print(f"  round {rnd + 1} {'ansible':18s} {secs:6.2f} s")

    med = {name: statistics.median(ts) for name, ts in times.items()}
    print("\nmedian wall time per fan-out:")
    for name, secs in med.items():
        print(f"  {name:18s} {secs:6.2f} s  (min {min(times[name]):.2f})")
    cpu_ratio = statistics.median(cpu["opsconsole"]) / statistics.median(cpu["paramiko-baseline"])
    print(f"client CPU: opsconsole / paramiko-baseline = {cpu_ratio:.2f}")
    ratio = med["opsconsole"] / med["paramiko-baseline"]
    verdict = "OK" if ratio <= 1.2 else "ABOVE TARGET"
    print(f"opsconsole / paramiko-baseline = {ratio:.2f}  (target <= 1.2: {verdict})")
    if "ansible" in med:
        print(f"opsconsole / ansible           = {med['opsconsole'] / med['ansible']:.2f}")
    else:
        print("ansible: not found on PATH (pip install ansible-core, or --ansible PATH)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
