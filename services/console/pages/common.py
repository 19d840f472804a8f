"""What every page module uses: the signed-in person, the checked form, the console's state."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData

from services.console.state import ConsoleState, ensure_vocabularies
from services.console.web import SESSION_COOKIE, NotSignedIn, Person, check_csrf

MAX_FILES = 8


def state_of(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def now() -> datetime:
    """The real time: sessions, uploads."""
    return datetime.now(UTC)


def campaign_now(request: Request) -> datetime:
    """The campaign's time, on the services' clock (docs/adr/0018): what "today" is on a page."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else now()


async def person(request: Request) -> Person:
    """The signed-in person (a dependency); anyone else is sent to the sign-in page."""
    state = state_of(request)
    assert state.accounts is not None and state.backend is not None
    session = await state.accounts.session(request.cookies.get(SESSION_COOKIE), now())
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedIn(target if request.method == "GET" else "/")
    caller = state.backend.as_person(session.account.actor, session.key)
    signed_in = Person(session, caller)
    request.state.person = signed_in
    ensure_vocabularies(state, caller)
    return signed_in


async def checked_form(request: Request, who: Person) -> FormData:
    """The posted form, refused unless it carries this session's CSRF token."""
    state = state_of(request)
    form = await request.form(max_files=MAX_FILES, max_fields=200,
                              max_part_size=state.console.evidence_max_bytes)
    check_csrf(who, form.get("csrf"))
    return form


def text(form: FormData, name: str) -> str:
    value: Any = form.get(name)
    return value.strip() if isinstance(value, str) else ""


Who = Annotated[Person, Depends(person)]
