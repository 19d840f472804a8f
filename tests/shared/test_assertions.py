"""Signed identity assertions: a service accepts the person a trusted front end vouches for, and
nothing else — a tampered, expired, future, unsigned or foreign-signed assertion is a 401, a
forbidden act is still the service's own 403, and bearer tokens keep working beside them."""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from services.system import service_app
from shared.assertions import AssertionSigner, AssertionVerifier
from shared.auth import TokenStore, hash_token
from shared.errors import UnauthenticatedError
from shared.messages import Actor, Role
from shared.settings import Settings
from shared.signing import generate_private_key, private_key_to_text, public_key_to_text

pytestmark = pytest.mark.unit

KEY = generate_private_key()
SIGNER = AssertionSigner(KEY, issuer="test-console")
REPORTER = Actor(id="zhang.san", name="张三(示例)", role=Role.DISTRICT_REPORTER, unit="echeng")


def store(*keys) -> TokenStore:
    return TokenStore({hash_token("lb_program"): Actor(id="etl", name="导入程序", role=Role.CITY_ADMIN)},
                      AssertionVerifier(keys or [KEY.public_key()]))


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_a_signed_assertion_names_the_person_with_role_and_unit():
    actor = store().authenticate(bearer(SIGNER.sign(REPORTER, datetime.now(UTC))))
    assert actor == REPORTER


def test_bearer_tokens_keep_working_beside_assertions():
    assert store().authenticate(bearer("lb_program")).id == "etl"


@pytest.mark.parametrize("case", ["tampered", "expired", "future", "foreign_key", "unsigned",
                                  "other_audience", "hs256_with_public_key", "no_role"])
def test_an_assertion_that_is_not_exactly_right_is_unauthenticated(case):
    now = datetime.now(UTC)
    token = SIGNER.sign(REPORTER, now)
    if case == "tampered":  # the same signature over a payload that now says city_admin
        head, body, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=="))
        claims.update(role="city_admin", unit=None)
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = ".".join([head, body, signature])
    elif case == "expired":
        token = SIGNER.sign(REPORTER, now - timedelta(minutes=10))
    elif case == "future":
        token = SIGNER.sign(REPORTER, now + timedelta(minutes=10))
    elif case == "foreign_key":
        token = AssertionSigner(generate_private_key(), issuer="x").sign(REPORTER, now)
    elif case == "unsigned":
        token = jwt.encode({"sub": "x", "name": "x", "role": "city_admin", "iat": now,
                            "exp": now + timedelta(minutes=1), "aud": "lookback", "iss": "x"},
                           None, algorithm="none")
    elif case == "other_audience":
        token = jwt.encode({"sub": "x", "name": "x", "role": "city_admin", "iat": now,
                            "exp": now + timedelta(minutes=1), "aud": "elsewhere", "iss": "x"},
                           KEY, algorithm="EdDSA")
    elif case == "hs256_with_public_key":  # the classic key-confusion forgery
        secret = base64.b64decode(public_key_to_text(KEY.public_key()))
        token = jwt.encode({"sub": "x", "name": "x", "role": "city_admin", "iat": now,
                            "exp": now + timedelta(minutes=1), "aud": "lookback", "iss": "x"},
                           secret, algorithm="HS256")
    elif case == "no_role":
        token = jwt.encode({"sub": "x", "name": "x", "iat": now, "exp": now + timedelta(minutes=1),
                            "aud": "lookback", "iss": "x"}, KEY, algorithm="EdDSA")
    with pytest.raises(UnauthenticatedError):
        store().authenticate(bearer(token))


def test_a_district_role_without_its_unit_cannot_be_asserted():
    now = datetime.now(UTC)
    token = jwt.encode({"sub": "x", "name": "x", "role": "district_reporter", "iat": now,
                        "exp": now + timedelta(minutes=1), "aud": "lookback", "iss": "x"},
                       KEY, algorithm="EdDSA")
    with pytest.raises(UnauthenticatedError, match="unit"):
        store().authenticate(bearer(token))


def test_a_service_without_the_key_refuses_assertions():
    with pytest.raises(UnauthenticatedError):
        TokenStore({}).authenticate(bearer(SIGNER.sign(REPORTER, datetime.now(UTC))))


def test_a_rotated_key_is_accepted_while_both_are_listed():
    new = generate_private_key()
    token = AssertionSigner(new, issuer="c").sign(REPORTER, datetime.now(UTC))
    assert store(KEY.public_key(), new.public_key()).authenticate(bearer(token)) == REPORTER


async def test_at_a_service_an_expired_or_foreign_assertion_is_401_before_anything_runs():
    settings = Settings(database_url="postgresql://unused/unused", tokens_json="{}",
                        assertion_public_key=public_key_to_text(KEY.public_key()),
                        docs_access="authenticated", metrics_access="authenticated")
    app = service_app("rectification", settings)
    now = datetime.now(UTC)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        expired = SIGNER.sign(REPORTER, now - timedelta(hours=1))
        answer = await client.post("/reports/monthly-list/submit",
                                   json={"unit": "huarong", "month": "2024-03"},
                                   headers={"Authorization": bearer(expired)})
        assert answer.status_code == 401 and answer.json()["error"] == "unauthenticated"
        foreign = AssertionSigner(generate_private_key(), issuer="x").sign(REPORTER, now)
        answer = await client.get("/rules", headers={"Authorization": bearer(foreign)})
        assert answer.status_code == 401


def test_the_settings_hold_several_public_keys():
    other = generate_private_key()
    settings = Settings(assertion_public_key=",".join(public_key_to_text(k.public_key())
                                                      for k in (KEY, other)),
                        assertion_signing_key=private_key_to_text(other))
    from shared.assertions import signer_from_settings, verifier_from_settings

    signer = signer_from_settings(settings, issuer="c")
    assert signer is not None
    assert verifier_from_settings(settings).verify(signer.sign(REPORTER, datetime.now(UTC))) == REPORTER
