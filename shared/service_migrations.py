"""Every migration folder of the system: the shared kernel's, then each service's read models."""
from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def all_migration_folders() -> list[Path]:
    folders = []
    for service in ("registry", "rectification", "inspection", "notifier"):
        folder = _ROOT / "services" / service / "sql"
        if folder.is_dir():
            folders.append(folder)
    return folders
