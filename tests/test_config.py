"""Config loading: the example loads, and every broken file is named by file:line:col and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opsconsole.config import load_config
from opsconsole.errors import ConfigError, ExitCode
from tests.helpers import cli, cli_subprocess

CORPUS = Path(__file__).parent / "config_corpus"

VALID_HEAD = """\
regions:
  sa-east-1:
    name: Sao Paulo
    timezone: America/Sao_Paulo
"""

# (name, inventory text, expected "line:col", expected field path, expected message part)
BROKEN: list[tuple[str, str, str, str, str]] = [
    (
        "bad-url",
        VALID_HEAD
        + """\
    services:
      payments:
        endpoints:
          - url: "htp:/x"
""",
        "8:18",
        "regions.sa-east-1.services.payments.endpoints[0].url",
        "URL",
    ),
    (
        "unknown-key",
        VALID_HEAD
        + """\
    servces: {}
""",
        "5:5",
        "regions.sa-east-1.servces",
        "unknown field",
    ),
    (
        "missing-name",
        """\
regions:
  eu-central-1:
    timezone: Europe/Berlin
""",
        "3:5",
        "regions.eu-central-1.name",
        "required",
    ),
    (
        "bad-timezone",
        """\
regions:
  eu-central-1:
    name: Frankfurt
    timezone: Europe/Frankfurt
""",
        "4:15",
        "regions.eu-central-1.timezone",
        "unknown time zone",
    ),
    (
        "two-targets",
        VALID_HEAD
        + """\
    services:
      gateway:
        endpoints:
          - url: http://127.0.0.1:1/healthz
            tcp: 127.0.0.1:1
""",
        "8:13",
        "regions.sa-east-1.services.gateway.endpoints[0]",
        "exactly one of url, tcp or ssh",
    ),
    (
        "bad-port",
        VALID_HEAD
        + """\
    hosts:
      db-1: {address: 10.0.0.1, port: 70000}
""",
        "6:39",
        "regions.sa-east-1.hosts.db-1.port",
        "65535",
    ),
    (
        "unknown-standby",
        VALID_HEAD
        + """\
    standby: us-east-9
""",
        "5:14",
        "regions.sa-east-1.standby",
        "unknown region 'us-east-9'",
    ),
    (
        "bad-status-range",
        VALID_HEAD
        + """\
    services:
      gateway:
        endpoints:
          - url: http://127.0.0.1:1/
            expect: {status: "two hundred"}
""",
        "9:30",
        "regions.sa-east-1.services.gateway.endpoints[0].expect.status",
        "status must be",
    ),
    (
        "yaml-syntax",
        VALID_HEAD
        + """\
    services: [unclosed
""",
        "6:1",
        "",
        "invalid YAML",
    ),
    (
        "duplicate-key",
        VALID_HEAD
        + """\
    name: again
""",
        "5:5",
        "",
        "duplicate key 'name'",
    ),
    (
        "no-regions",
        "regions: {}\n",
        "1:10",
        "regions",
        "at least 1",
    ),
    (
        "tcp-without-port",
        VALID_HEAD
        + """\
    services:
      gateway:
        endpoints:
          - tcp: gateway.internal
""",
        "8:18",
        "regions.sa-east-1.services.gateway.endpoints[0].tcp",
        "pattern",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "where", "field", "msg"), BROKEN, ids=[b[0] for b in BROKEN]
)
def test_broken_inventory_names_file_line_and_field(
    tmp_path: Path, name: str, text: str, where: str, field: str, msg: str
) -> None:
    cfg = tmp_path / name
    cfg.mkdir()
    (cfg / "inventory.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"{cfg / 'inventory.yaml'}:{where}: "), first
    if field:
        assert f": {field}: " in first, first
    assert msg in first, first


def test_broken_settings_are_reported_in_settings_file(
    tmp_path: Path, example_config: Path
) -> None:
    cfg = tmp_path / "cfg"
    shutil.copytree(example_config, cfg)
    (cfg / "settings.yaml").write_text("probe:\n  interval_seconds: -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert str(info.value).startswith(f"{cfg / 'settings.yaml'}:2:21: probe.interval_seconds: ")


def test_example_inventory_loads_with_four_regions(example_config: Path) -> None:
    cfg = load_config(example_config)
    assert set(cfg.inventory.regions) == {
        "ap-southeast-1",
        "ap-south-1",
        "sa-east-1",
        "eu-central-1",
    }
    for region in cfg.inventory.regions.values():
        assert set(region.services) == {"gateway", "payments", "lending"}
        assert region.standby in cfg.inventory.regions


def test_config_dir_search_order(
    tmp_path: Path, example_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ./config is used when nothing else is given
    shutil.copytree(example_config, tmp_path / "config")
    assert load_config().directory == tmp_path / "config"
    # OPSCONSOLE_CONFIG wins over ./config, and --config over both
    other = tmp_path / "other"
    shutil.copytree(example_config, other)
    monkeypatch.setenv("OPSCONSOLE_CONFIG", str(other))
    assert load_config().directory == other
    assert load_config(tmp_path / "config").directory == tmp_path / "config"


def test_missing_config_dir_says_what_to_do(tmp_path: Path) -> None:
    result = cli("config", "check")
    assert result.exit_code == ExitCode.CONFIG
    assert "no config directory found" in result.stderr
    assert "--config" in result.stderr


def test_config_check_broken_file_exits_nonzero_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "inventory.yaml").write_text(BROKEN[0][1])
    proc = cli_subprocess("--config", str(cfg), "config", "check")
    assert proc.returncode == ExitCode.CONFIG
    assert "Traceback" not in proc.stderr
    assert (
        f"{cfg / 'inventory.yaml'}:8:18: regions.sa-east-1.services.payments.endpoints[0].url:"
        in proc.stderr
    )


def test_config_check_summarises(example_config: Path) -> None:
    result = cli("--config", str(example_config), "config", "check", "--json")
    assert result.exit_code == 0
    import json

    data = json.loads(result.stdout)
    assert len(data["regions"]) == 4
    assert sum(r["services"] for r in data["regions"]) == 12


def test_schema_inventory_is_json_schema() -> None:
    import json

    result = cli("schema", "inventory")
    schema = json.loads(result.stdout)
    assert schema["properties"]["regions"]["type"] == "object"
    assert schema["$defs"]["Endpoint"]["additionalProperties"] is False
