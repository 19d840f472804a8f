"""Bearer tokens → principals, and the checks every command passes before it reaches the store.

Tokens are stored hashed (SHA-256 hex), in a JSON file or an environment variable:
`{"<sha256 hex of token>": {"id": "...", "name": "...", "role": "district_reporter", "unit": "echeng"}}`.
A stolen tokens file therefore reveals no token.

A bearer credential may also be a signed identity assertion from a trusted front end (the person
signed in there; shared/assertions.py), when the store is given that front end's public key.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from shared.assertions import AssertionVerifier, looks_like_assertion
from shared.errors import ForbiddenError, UnauthenticatedError
from shared.messages import Actor, Role


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "lb_" + secrets.token_urlsafe(24)


class TokenStore:
    def __init__(self, principals_by_hash: Mapping[str, Actor],
                 assertions: AssertionVerifier | None = None) -> None:
        self._by_hash = dict(principals_by_hash)
        self.assertions = assertions or AssertionVerifier(())

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Mapping[str, object]],
                     assertions: AssertionVerifier | None = None) -> TokenStore:
        """Refuses the whole set if one principal is malformed (a district role without its
        unit would otherwise see every unit), naming the entry by its hash's first characters."""
        principals = {}
        for digest, principal in raw.items():
            try:
                principals[digest.lower()] = Actor.model_validate(principal)
            except ValidationError as exc:
                reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                raise ValueError(f"tokens entry {digest[:8]}…: {reasons}") from None
        return cls(principals, assertions)

    @classmethod
    def from_sources(cls, *, file: Path | None = None, inline_json: str | None = None,
                     assertions: AssertionVerifier | None = None) -> TokenStore:
        raw: dict[str, Mapping[str, object]] = {}
        if file is not None and file.exists():
            raw.update(json.loads(file.read_text(encoding="utf-8")))
        if inline_json:
            raw.update(json.loads(inline_json))
        return cls.from_mapping(raw, assertions)

    def authenticate(self, authorization: str | None) -> Actor:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise UnauthenticatedError("missing bearer token")
        token = authorization[7:].strip()
        if looks_like_assertion(token):
            return self.assertions.verify(token)
        actor = self._by_hash.get(hash_token(token))
        if actor is None:
            raise UnauthenticatedError("invalid bearer token")
        return actor

    def __len__(self) -> int:
        return len(self._by_hash)


def authorize_command(actor: Actor, *, unit: str | None = None,
                      roles: set[Role] | frozenset[Role] | None = None) -> None:
    """Raise ForbiddenError unless `actor` may send this command about `unit`.

    Leaders and auditors read only; a district role touches only its own reporting unit; `roles`,
    when given, narrows who may send the command at all.
    """
    if not actor.role.may_command:
        raise ForbiddenError(f"role {actor.role.value} sends no commands",
                             zh="您的角色只能查看，不能办理。")
    if roles is not None and actor.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise ForbiddenError(f"role {actor.role.value} may not do this (allowed: {allowed})",
                             zh="您的角色不能办理此事项。")
    if actor.role.is_district:
        if unit is None:
            raise ForbiddenError("a district role may act only on its own unit's data")
        if actor.unit != unit:
            raise ForbiddenError(f"a district role of {actor.unit} may not act on unit {unit}")


def authorize_read(actor: Actor, *, unit: str | None = None) -> None:
    """District roles see only their own unit; everyone else reads everything."""
    if actor.role.is_district and unit is not None and actor.unit != unit:
        raise ForbiddenError(f"a district role of {actor.unit} may not read unit {unit}",
                             zh="您只能查看本单位的数据。")
