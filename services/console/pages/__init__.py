"""The console's pages, one module per menu entry (工作台 and 公开 live in home)."""
from __future__ import annotations

from fastapi import APIRouter

from services.console.pages import audit, board, home, inspection, problems, projects, reports

ROUTERS: list[APIRouter] = [home.router, projects.router, problems.router, reports.router,
                            inspection.router, board.router, audit.router]
