"""People's accounts, sign-in with throttling, and sessions, in the console's own tables.

Passwords are hashed with argon2id (`argon2-cffi`, its default parameters, which it keeps
current); an unknown name costs the same hashing as a wrong password, so timing tells no names.
Every failure makes the next attempt of that account wait longer (2^k seconds after
`slow_after` failures), and enough failures lock the account, or the address they came from (many
people may share one, so it only locks, at a higher count), for a while; a success clears the
account's count. Sessions are random 256-bit values kept only as SHA-256, each with its own
CSRF token; they end at a fixed time after sign-in and at sign-out.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.console.config import ConsoleSettings
from shared.campaign import Campaign
from shared.messages import Actor, Role

ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("an unknown account costs the same time as a known one")


class AccountError(ValueError):
    """A bad account: the message says what to change."""


@dataclass(frozen=True)
class Account:
    account_id: str
    display_name: str
    role: Role
    unit: str | None

    @property
    def actor(self) -> Actor:
        return Actor(id=self.account_id, name=self.display_name, role=self.role, unit=self.unit)


@dataclass(frozen=True)
class Session:
    account: Account
    csrf_token: str
    expires_at: datetime
    key: str  # the SHA-256 of the cookie: names the session without being it


@dataclass(frozen=True)
class SignInResult:
    session_cookie: str | None = None
    account: Account | None = None
    refused: str | None = None          # why, in Chinese, for the person
    wait_seconds: int = 0


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _account(row: asyncpg.Record) -> Account:
    return Account(row["account_id"], row["display_name"], Role(row["role"]), row["unit"])


def check_account(account_id: str, display_name: str, role: str, unit: str | None,
                  password: str, campaign: Campaign) -> Account:
    """The account as given, or AccountError naming what is wrong."""
    if not ACCOUNT_ID.match(account_id):
        raise AccountError("登录名用2–64个小写字母、数字、点、下划线或连字符，以字母或数字开头")
    if not 1 <= len(display_name.strip()) <= 64:
        raise AccountError("姓名不能为空，最多64个字")
    try:
        actor = Actor(id=account_id, name=display_name.strip(), role=role, unit=unit or None)
    except ValueError as exc:
        raise AccountError(f"角色与单位不符：{exc}") from None
    if actor.unit is not None and not campaign.has_unit(actor.unit):
        raise AccountError(f"没有这个填报单位：{actor.unit}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少{MIN_PASSWORD}个字符")
    return Account(actor.id, actor.name, actor.role, actor.unit)


class Accounts:
    def __init__(self, pool: asyncpg.Pool, settings: ConsoleSettings) -> None:
        self.pool, self.settings = pool, settings

    async def add(self, account: Account, password: str, now: datetime, *,
                  replace: bool = False) -> bool:
        """Create the account (or, with `replace`, reset its name, role, unit and password).
        False if it exists and `replace` is not given."""
        hashed = _HASHER.hash(password)
        conflict = ("DO UPDATE SET display_name = EXCLUDED.display_name, role = EXCLUDED.role, "
                    "unit = EXCLUDED.unit, password_hash = EXCLUDED.password_hash, "
                    "disabled_at = NULL" if replace else "DO NOTHING")
        status = await self.pool.execute(
            f"""INSERT INTO console.accounts (account_id, display_name, role, unit, password_hash,
                                              created_at)
                VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id) {conflict}""",
            account.account_id, account.display_name, account.role.value, account.unit, hashed,
            now)
        if replace:  # a reset password ends every session of the old one
            await self.pool.execute("DELETE FROM console.sessions WHERE account_id = $1",
                                    account.account_id)
        return str(status).endswith("1")

    async def count(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM console.accounts"))

    async def sign_in(self, account_id: str, password: str, address: str,
                      now: datetime) -> SignInResult:
        account_id = account_id.strip().lower()
        wait = await self._wait(account_id, address, now)
        if wait is not None:
            return wait
        row = await self.pool.fetchrow(
            "SELECT * FROM console.accounts WHERE account_id = $1 AND disabled_at IS NULL",
            account_id)
        try:
            _HASHER.verify(row["password_hash"] if row else _DUMMY_HASH, password)
            ok = row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            await self._fail(account_id, address, now)
            return SignInResult(refused="登录名或密码不正确")
        if _HASHER.check_needs_rehash(row["password_hash"]):
            await self.pool.execute("UPDATE console.accounts SET password_hash = $2 "
                                    "WHERE account_id = $1", account_id, _HASHER.hash(password))
        await self.pool.execute("DELETE FROM console.sign_in_failures WHERE kind = 'account' "
                                "AND key = $1", account_id)
        cookie = secrets.token_urlsafe(32)
        await self.forget_expired(now)
        await self.pool.execute(
            """INSERT INTO console.sessions (session_hash, account_id, csrf_token, created_at,
                                             expires_at) VALUES ($1, $2, $3, $4, $5)""",
            _digest(cookie), account_id, secrets.token_urlsafe(32), now,
            now + timedelta(hours=self.settings.session_hours))
        return SignInResult(session_cookie=cookie, account=_account(row))

    async def _wait(self, account_id: str, address: str, now: datetime) -> SignInResult | None:
        rows = await self.pool.fetch(
            """SELECT kind, failures, last_failure_at, locked_until FROM console.sign_in_failures
                WHERE (kind, key) IN (('account', $1), ('address', $2))""", account_id, address)
        longest = 0
        for row in rows:
            if row["locked_until"] is not None and row["locked_until"] > now:
                minutes = int((row["locked_until"] - now).total_seconds() // 60) + 1
                return SignInResult(refused=f"登录失败次数过多，已锁定，请{minutes}分钟后再试",
                                    wait_seconds=minutes * 60)
            if row["kind"] == "address":
                continue  # many people may share an address: it only locks, never slows
            ready_at = row["last_failure_at"] + timedelta(seconds=self._delay(row["failures"]))
            longest = max(longest, int((ready_at - now).total_seconds() + 0.999))
        if longest > 0:
            return SignInResult(refused=f"登录失败次数较多，请{longest}秒后再试",
                                wait_seconds=longest)
        return None

    def _delay(self, failures: int) -> int:
        over = failures - self.settings.slow_after
        return 0 if over < 0 else min(2 ** over, self.settings.max_wait_seconds)

    async def _fail(self, account_id: str, address: str, now: datetime) -> None:
        for kind, key, limit in (("account", account_id, self.settings.lock_after_account),
                                 ("address", address, self.settings.lock_after_address)):
            await self.pool.execute(
                """INSERT INTO console.sign_in_failures AS f (kind, key, failures, last_failure_at)
                   VALUES ($1, $2, 1, $3)
                   ON CONFLICT (kind, key) DO UPDATE SET
                       failures = CASE WHEN f.locked_until IS NOT NULL AND f.locked_until <= $3
                                       THEN 1 ELSE f.failures + 1 END,
                       last_failure_at = $3,
                       locked_until = CASE WHEN f.locked_until IS NOT NULL AND f.locked_until <= $3
                                           THEN NULL
                                           WHEN f.failures + 1 >= $4 THEN $5
                                           ELSE f.locked_until END""",
                kind, key, now, limit, now + timedelta(minutes=self.settings.lock_minutes))

    async def session(self, cookie: str | None, now: datetime) -> Session | None:
        if not cookie:
            return None
        row = await self.pool.fetchrow(
            """SELECT s.csrf_token, s.expires_at, a.* FROM console.sessions s
                 JOIN console.accounts a USING (account_id)
                WHERE s.session_hash = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL""",
            _digest(cookie), now)
        if row is None:
            return None
        return Session(_account(row), row["csrf_token"], row["expires_at"], _digest(cookie))

    async def sign_out(self, cookie: str | None) -> None:
        if cookie:
            await self.pool.execute("DELETE FROM console.sessions WHERE session_hash = $1",
                                    _digest(cookie))

    async def forget_expired(self, now: datetime) -> None:
        await self.pool.execute("DELETE FROM console.sessions WHERE expires_at <= $1", now)
