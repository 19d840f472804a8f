"""The OpenAPI documents' gaps per service, the counts of issue 14 (docs/adr/0015).

    python -m bench.openapi_report            # a table: one column per service, and the total
    python -m bench.openapi_report --json     # the same counts as JSON

The documents are built from the app objects as `create_app` makes them: nothing is started,
nothing connects. The counting is shared.api_contract_report's.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from shared.api_contract_report import Gaps, gaps


def service_apps(data_dir: Path) -> dict[str, Callable[[], FastAPI]]:
    """The four services' apps, as their `create_app` builds them (nothing is started), with
    the documents and metrics behind a token as a deployment serves them by default."""
    from services.inspection.app import create_app as inspection
    from services.notifier.app import create_app as notifier
    from services.rectification.app import create_app as rectification
    from services.registry.app import create_app as registry
    from shared.settings import Settings

    def settings() -> Settings:
        return Settings(database_url="postgresql://127.0.0.1/unused", data_dir=data_dir,
                        docs_access="authenticated", metrics_access="authenticated")

    return {"registry": lambda: registry(settings()),
            "rectification": lambda: rectification(settings()),
            "inspection": lambda: inspection(settings()),
            "notifier": lambda: notifier(settings())}


def documents(data_dir: Path) -> dict[str, dict[str, Any]]:
    return {name: build().openapi() for name, build in service_apps(data_dir).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.openapi_report",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lookback-openapi-") as folder:
        counts = {name: gaps(doc) for name, doc in documents(Path(folder)).items()}
    total = sum(counts.values(), Gaps(0, 0, 0, 0, 0, 0, 0, 0))
    if args.json:
        print(json.dumps({**{k: asdict(v) for k, v in counts.items()}, "total": asdict(total)},
                         indent=2))
        return 0
    columns = list(asdict(total))
    names = [*counts, "total"]
    print(f"{'':<24}" + "".join(f"{name:>14}" for name in names))
    for column in columns:
        print(f"{column:<24}" + "".join(f"{asdict(counts.get(n, total))[column]:>14}"
                                        for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
