"""What every page shares: the templates, the filters that write dates and codes as people read
them, who is signed in, and the CSRF check of every form.

Dates are written 2024年3月25日 and times 2024年3月25日 14:30, in the campaign's time zone; codes
are shown by their Chinese labels (labels.py). Every form carries the session's CSRF token and
every POST is refused (403) without it: with SameSite=Strict cookies as well, another site can
neither read nor forge a form.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.console.accounts import Session
from services.console.backend import Caller
from services.console.labels import Labels
from shared.messages import Role

SESSION_COOKIE = "lookback_session"
TEMPLATES = Path(__file__).with_name("templates")


class NotSignedIn(Exception):
    """The page needs a person; the answer is the sign-in page, then back here."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class CsrfRefused(Exception):
    pass


def to_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and "T" in value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def to_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def make_environment(labels: Labels, zone: Any) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)

    def zh_date(value: Any) -> str:
        moment = to_datetime(value)
        if moment is not None:
            value = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
        day = to_date(value)
        return "—" if day is None else f"{day.year}年{day.month}月{day.day}日"

    def zh_time(value: Any) -> str:
        moment = to_datetime(value)
        if moment is None:
            return zh_date(value)
        local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
        return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"

    def percent(value: Any) -> str:
        return "—" if value in (None, "") else f"{value}%"

    env.filters.update(zh_date=zh_date, zh_time=zh_time, percent=percent, urlquote=quote)
    env.globals.update(label=labels.label, terms=labels.terms,
                       unit_name=lambda code: labels.label("unit", code),
                       role_name=lambda code: labels.label("role", code))
    return env


@dataclass
class Person:
    """The signed-in person and what a page needs to act for them."""

    session: Session
    caller: Caller

    @property
    def account(self) -> Any:
        return self.session.account

    @property
    def role(self) -> Role:
        return Role(self.session.account.role)

    @property
    def unit(self) -> str | None:
        return self.session.account.unit

    @property
    def is_district(self) -> bool:
        return self.role.is_district

    @property
    def commands(self) -> bool:
        return self.role.may_command


def nav_for(person: Person | None) -> list[tuple[str, str]]:
    if person is None:
        return [("/public", "公开"), ("/login", "登录")]
    items = [("/", "工作台"), ("/projects", "项目台账"), ("/problems", "问题清单"),
             ("/reports", "报表"), ("/inspection", "抽查"), ("/board", "督办与积分")]
    if person.role in (Role.AUDITOR, Role.CITY_ADMIN):
        items.append(("/audit", "审计"))
    items.append(("/public", "公开"))
    return items


def render(request: Request, template: str, *, person: Person | None = None,
           status_code: int = 200, **context: Any) -> HTMLResponse:
    env: Environment = request.app.state.console.templates
    html = env.get_template(template).render(
        request=request, person=person, nav=nav_for(person), path=request.url.path,
        csrf=person.session.csrf_token if person else "", **context)
    return HTMLResponse(html, status_code=status_code)


def check_csrf(person: Person, submitted: Any) -> None:
    if not isinstance(submitted, str) or not secrets.compare_digest(
            submitted.encode(), person.session.csrf_token.encode()):
        raise CsrfRefused()


def see_other(url: str) -> RedirectResponse:
    """After a form: the browser asks for the page again with GET (no resubmission)."""
    return RedirectResponse(url, status_code=303)
