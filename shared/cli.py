"""The `lookback` command: one entry point, one sub-command group per concern."""
from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Lookback (回头看): follow up public works with an audit trail.")

# Sub-command groups live beside the code they drive; each module exposes a `cli` Typer.
_GROUPS = {
    "audit": "shared.audit_cli",
    "inspection": "services.inspection.cli",
}


def _register_groups() -> None:
    for name, module_name in _GROUPS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        app.add_typer(module.cli, name=name)


_register_groups()


def main() -> None:
    app()
