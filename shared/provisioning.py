"""Provisioning: the identities the system logs in with, created idempotently by an administrator.

Least privilege (docs/adr/0009): no service logs in as the PostgreSQL superuser or the broker's
administrator. An administrator runs `lookback provision` once per deployment (and again after an
upgrade: everything here is idempotent) and this module, told which service roles exist (the
application layer knows the services; the kernel does not):

- **PostgreSQL**: the database; a migration role that owns the schemas (migrations run under it,
  as a separate one-off step); one login role per service; the sequencer's role; the auditor's
  read-only role. Every login role is NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
  NOBYPASSRLS NOINHERIT and a member of no role, so a service's session can never become another
  role (`SET ROLE` needs membership). Passwords are SCRAM-hashed by the server.
- **RabbitMQ** (through its management API): one vhost, one user per service whose permissions
  allow configuring and writing only its own objects (`<service>.…`) and reading its own queues
  and the producers' exchanges — it can publish only to its own exchange, and nobody but the
  producer can publish there; the operator, who may read the dead-letter queues and put a
  message back on its queue, nothing more.

Nothing here logs a password; the plan printed to the operator names roles, users and grants.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import asyncpg
import httpx

ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"


def service_role(service: str) -> str:
    """The database role and broker user a service logs in as (a convention, not a list)."""
    return f"lookback_{service}"


MIGRATOR = "lookback_migrator"
SEQUENCER = "lookback_sequencer"
AUDITOR = "lookback_auditor"
OPERATOR = "lookback_operator"  # decides about dead letters (replay, discard), nothing else


@dataclass(frozen=True)
class DatabasePlan:
    """Who may log in to the database: the migrator, the services, the sequencer, the auditor."""

    database: str
    services: Sequence[str]
    passwords: Mapping[str, str] = field(default_factory=dict)  # role -> password (none: trust/cert)

    @property
    def login_roles(self) -> list[str]:
        return [MIGRATOR, *(service_role(s) for s in self.services), SEQUENCER, AUDITOR, OPERATOR]


async def provision_roles(admin_dsn: str, roles: Sequence[str],
                          passwords: Mapping[str, str] | None = None) -> list[str]:
    """Create or correct login roles (cluster-wide); return what was done, in words."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute("SET password_encryption = 'scram-sha-256'")
        return [await _ensure_role(admin, role, (passwords or {}).get(role)) for role in roles]
    finally:
        await admin.close()


async def provision_database(admin_dsn: str, plan: DatabasePlan) -> list[str]:
    """Create or correct the database and its login roles; return what was done, in words.

    `admin_dsn` is a superuser's connection to any database of the cluster (`postgres`); the
    target database is created if missing and owned by the migrator.
    """
    done = await provision_roles(admin_dsn, plan.login_roles, plan.passwords)
    admin = await asyncpg.connect(admin_dsn)
    try:
        exists = await admin.fetchval("SELECT true FROM pg_database WHERE datname = $1", plan.database)
        if not exists:
            await admin.execute(f"CREATE DATABASE {_ident(plan.database)} OWNER {_ident(MIGRATOR)}")
            done.append(f"database {plan.database} created, owned by {MIGRATOR}")
        else:
            await admin.execute(f"ALTER DATABASE {_ident(plan.database)} OWNER TO {_ident(MIGRATOR)}")
            done.append(f"database {plan.database} owned by {MIGRATOR}")
        # Only the system's own roles connect; PUBLIC's default CONNECT is withdrawn.
        await admin.execute(f"REVOKE ALL ON DATABASE {_ident(plan.database)} FROM PUBLIC")
        roles = ", ".join(_ident(r) for r in plan.login_roles)
        await admin.execute(f"GRANT CONNECT ON DATABASE {_ident(plan.database)} TO {roles}")
        done.append(f"CONNECT on {plan.database} to {', '.join(plan.login_roles)} only")
    finally:
        await admin.close()
    target = await asyncpg.connect(_with_database(admin_dsn, plan.database))
    try:
        # PostgreSQL 15 no longer lets every role create in `public`; the migrator keeps its
        # bookkeeping table there.
        await target.execute(f"GRANT CREATE ON SCHEMA public TO {_ident(MIGRATOR)}")
    finally:
        await target.close()
    return done


async def _ensure_role(conn: asyncpg.Connection, role: str, password: str | None) -> str:
    exists = await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role)
    verb = "corrected" if exists else "created"
    statement = "ALTER ROLE" if exists else "CREATE ROLE"
    await conn.execute(f"{statement} {_ident(role)} WITH {ROLE_ATTRIBUTES}")
    if password is not None:
        # format(%L) quotes the password server-side; the statement text is never logged here.
        sql = await conn.fetchval("SELECT format('ALTER ROLE %I WITH PASSWORD %L', $1::text, $2::text)",
                                  role, password)
        await conn.execute(sql)
    # A member of no role: nothing to SET ROLE to, nothing to inherit.
    memberships = await conn.fetch(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1", role)
    for row in memberships:
        await conn.execute(f"REVOKE {_ident(row['rolname'])} FROM {_ident(role)}")
    return f"role {role} {verb} ({ROLE_ATTRIBUTES}{', password set' if password else ''})"


def _ident(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


def _with_database(dsn: str, database: str) -> str:
    base, _, query = dsn.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{database}" + (f"?{query}" if query else "")


# ----- RabbitMQ ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerPermissions:
    configure: str
    write: str
    read: str


def service_permissions(service: str, prefix_pattern: str = "") -> BrokerPermissions:
    """A service configures and writes only its own objects (`<prefix><service>.…`: its events
    exchange, archive, dead-letter exchange and queue, its consumer queues) and reads its own
    queues and any producer's events exchange (to bind its queues to it). It cannot publish to
    another service's exchange, nor to the default exchange (`amq.default` matches nothing).
    `prefix_pattern` is a regular expression (`re.escape` a literal prefix)."""
    own = f"^{prefix_pattern}{re.escape(service)}\\..*"
    return BrokerPermissions(configure=own, write=own,
                             read=f"({own}|^{prefix_pattern}[a-z][a-z0-9_-]*\\.events)$")


def operator_permissions(prefix_pattern: str = "") -> BrokerPermissions:
    """The operator reads the services' dead-letter queues and puts a message back on its
    consumer's queue through the default exchange (`lookback dlq replay`); it declares nothing
    and can publish to no service's exchange."""
    return BrokerPermissions(configure="^$", write="^amq\\.default$",
                             read=f"^{prefix_pattern}[a-z][a-z0-9_-]*\\.dlq$")


@dataclass(frozen=True)
class BrokerPlan:
    vhost: str
    services: Sequence[str]
    passwords: Mapping[str, str] = field(default_factory=dict)  # user -> password
    prefix: str = ""
    # A regular expression for the prefix instead (a test run's many `t<hex>.` prefixes).
    prefix_pattern: str | None = None

    def users(self) -> dict[str, BrokerPermissions]:
        """Every broker user and its permissions: one per service, and the operator."""
        pattern = re.escape(self.prefix) if self.prefix_pattern is None else self.prefix_pattern
        users = {service_role(service): service_permissions(service, pattern)
                 for service in self.services}
        users[OPERATOR] = operator_permissions(pattern)
        return users


async def provision_broker(management_url: str, admin_user: str, admin_password: str,
                           plan: BrokerPlan, *, timeout: float = 10.0) -> list[str]:
    """Create or correct the vhost, one user per service and the operator, with their
    permissions (idempotent). No user gets a tag: none may use the management API, set
    policies or impersonate another (RabbitMQ refuses a message whose `user_id` is not its
    publisher's login, which is what consumers check)."""
    done: list[str] = []
    vhost = quote(plan.vhost, safe="")
    async with httpx.AsyncClient(base_url=management_url.rstrip("/"),
                                 auth=(admin_user, admin_password), timeout=timeout) as api:
        (await api.put(f"/api/vhosts/{vhost}", json={})).raise_for_status()
        done.append(f"vhost {plan.vhost}")
        for user, permissions in plan.users().items():
            body: dict[str, str] = {"tags": ""}
            password = plan.passwords.get(user)
            if password is not None:
                body["password"] = password
            else:
                body["password_hash"] = ""  # no password: certificate (EXTERNAL) login only
            (await api.put(f"/api/users/{quote(user, safe='')}", json=body)).raise_for_status()
            (await api.put(f"/api/permissions/{vhost}/{quote(user, safe='')}",
                           json={"configure": permissions.configure, "write": permissions.write,
                                 "read": permissions.read})).raise_for_status()
            done.append(f"user {user} on {plan.vhost}: configure {permissions.configure}, "
                        f"write {permissions.write}, read {permissions.read}")
    return done
