"""Signed identity assertions: how a front end acts at a service as the person signed in to it.

A person signs in to the console (never to a service); for each call the console makes on their
behalf it signs a short-lived assertion of who they are, and the service verifies it with the
console's public key (a setting) exactly where it checks bearer tokens (`TokenStore`). The service
then decides everything as before: the role and unit in the assertion are checked on every
command, and the person is recorded in the event metadata. The front end is trusted to say who
signed in, never to decide what they may do (docs/adr/0014).

The format is a JSON Web Token (RFC 7519) signed with Ed25519 (`alg: EdDSA`, RFC 8037), made and
checked by PyJWT: a well-known format an outsider can read, with expiry and audience checks that
are not ours to get wrong. Claims: `sub` (the person's id), `name`, `role`, `unit` (district roles),
`iat`, `exp`, `aud` (`lookback`), `iss` (who signed). Any other algorithm, a missing claim, a bad
signature, an expired or future-dated assertion is refused as unauthenticated (401).
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from shared.errors import UnauthenticatedError
from shared.messages import Actor
from shared.settings import Settings
from shared.signing import load_private_key, load_public_key

AUDIENCE = "lookback"
ALGORITHM = "EdDSA"
DEFAULT_LIFETIME = timedelta(seconds=120)
# Clocks of two processes differ a little; an assertion is accepted this much early or late.
LEEWAY = timedelta(seconds=10)
_REQUIRED = ["sub", "name", "role", "iat", "exp", "aud", "iss"]


def looks_like_assertion(token: str) -> bool:
    """A JWT has three dot-separated parts; our bearer tokens (`lb_…`) have no dot."""
    return token.count(".") == 2


class AssertionSigner:
    """Signs assertions for the people signed in to a front end (`issuer` names it)."""

    def __init__(self, private_key: Ed25519PrivateKey, *, issuer: str,
                 lifetime: timedelta = DEFAULT_LIFETIME) -> None:
        self._key, self.issuer, self.lifetime = private_key, issuer, lifetime

    def sign(self, actor: Actor, now: datetime) -> str:
        claims: dict[str, Any] = {"sub": actor.id, "name": actor.name, "role": actor.role.value,
                                  "unit": actor.unit, "iat": now, "exp": now + self.lifetime,
                                  "aud": AUDIENCE, "iss": self.issuer}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class AssertionVerifier:
    """Checks assertions against the public keys of the front ends a service trusts."""

    def __init__(self, public_keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = list(public_keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def verify(self, token: str) -> Actor:
        if not self._keys:
            raise UnauthenticatedError("identity assertions are not accepted here (no key set)")
        claims: dict[str, Any] | None = None
        for key in self._keys:
            try:
                claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE,
                                    leeway=LEEWAY, options={"require": _REQUIRED})
                break
            except jwt.InvalidSignatureError:
                continue  # perhaps another trusted key (a key being rotated)
            except jwt.ExpiredSignatureError:
                raise UnauthenticatedError("the identity assertion has expired") from None
            except jwt.ImmatureSignatureError:
                raise UnauthenticatedError("the identity assertion is not valid yet") from None
            except jwt.InvalidTokenError as exc:
                raise UnauthenticatedError(f"invalid identity assertion: {exc}") from None
        if claims is None:
            raise UnauthenticatedError("invalid identity assertion: the signature does not verify")
        try:
            return Actor(id=claims["sub"], name=claims["name"], role=claims["role"],
                         unit=claims.get("unit"))
        except ValidationError as exc:
            reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise UnauthenticatedError(f"invalid identity assertion: {reasons}") from None


def verifier_from_settings(settings: Settings) -> AssertionVerifier:
    """The trusted front ends' public keys (none: assertions are refused, tokens still work)."""
    return AssertionVerifier(load_public_key(text) for text in settings.assertion_public_key_texts())


def signer_from_settings(settings: Settings, *, issuer: str,
                         lifetime: timedelta = DEFAULT_LIFETIME) -> AssertionSigner | None:
    text = settings.assertion_signing_key_text()
    if text is None:
        return None
    return AssertionSigner(load_private_key(text), issuer=issuer, lifetime=lifetime)
