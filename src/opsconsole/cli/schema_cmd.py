"""``opsconsole schema``: JSON Schema of each YAML format, for yaml-language-server."""

from __future__ import annotations

import importlib
import json

import typer

app = typer.Typer(
    help="Print the JSON Schema of a YAML file format (for editors).", no_args_is_help=True
)

# name -> "module:Model". Each capability adds its format here.
SCHEMAS: dict[str, tuple[str, str]] = {
    "inventory": ("opsconsole.config:Inventory", "config/inventory.yaml"),
    "settings": ("opsconsole.config:Settings", "config/settings.yaml"),
    "playbook": ("opsconsole.incidents.playbook:Playbook", "playbooks/*.yaml"),
    "incidents": ("opsconsole.incidents.settings:IncidentSettings", "config/incidents.yaml"),
    "drills": ("opsconsole.drills.model:DrillsFile", "config/drills.yaml"),
    "runbook": ("opsconsole.runbooks.schema:Runbook", "runbooks/*.yaml"),
    "access": ("opsconsole.access:AccessPolicy", "config/access.yaml"),
    "rules": ("opsconsole.rules.model:RulesFile", "config/rules.yaml"),
}


def _model_schema(name: str) -> dict[str, object]:
    target, _ = SCHEMAS[name]
    module, attr = target.split(":")
    model = getattr(importlib.import_module(module), attr)
    schema: dict[str, object] = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.setdefault("title", name)
    return schema


def _make(name: str, where: str) -> None:
    def command() -> None:
        typer.echo(json.dumps(_model_schema(name), indent=2))

    command.__doc__ = f"JSON Schema of {where}."
    app.command(name)(command)


for _name, (_, _where) in SCHEMAS.items():
    _make(_name, _where)
