"""Settings for every service process, from the environment (`LOOKBACK_` prefix) or arguments.

No URL means the embedded default: an embedded PostgreSQL (pgserver) and the local transport.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOKBACK_", extra="ignore")

    database_url: str | None = Field(None, description="PostgreSQL DSN; none = embedded pgserver")
    amqp_url: str | None = Field(None, description="RabbitMQ URL; none = local transport")
    data_dir: Path = Field(Path("var"), description="embedded database, checkpoints, keys")
    http_host: str = "127.0.0.1"
    http_port: int = 0
    bus_prefix: str = Field("", description="prefix for exchange and queue names (tests)")
    deployment: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description=(
        "names this installation in each event's ce-source, urn:lookback:<deployment>:<service>; "
        "default: the bus prefix without its dot, else `default`"))
    tokens_file: Path | None = None
    tokens_json: str | None = Field(None, description="tokens inline: {sha256hex: principal}")
    signing_key: str | None = Field(None, description="Ed25519 private key (PEM or base64 raw)")
    signing_key_file: Path | None = None
    checkpoint_dir: Path | None = None
    checkpoint_every_events: int = 1000
    checkpoint_every_seconds: float = 60.0
    witness: str | None = Field(None, description="where signed checkpoints are shipped off the "
                                "machine: folder:<path>,git:<remote> (shared/witness.py)")
    campaign_file: Path | None = None
    log_json: bool | None = Field(None, description="JSON logs; default: JSON unless on a TTY")
    log_level: str = "INFO"
    publish_timeout: float = 10.0
    poll_interval: float = Field(0.1, description="ledger readers' fallback poll (NOTIFY wakes them)")
    sequencer_poll_interval: float = Field(0.02, description="appenders never notify: the sequencer polls")
    graceful_timeout: float = Field(30.0, description="a stop finishes or returns its work by then")
    # Pauses before each in-process retry of a transient failure (jittered); after the last, the
    # message goes back to the broker, whose delivery limit counts it (docs/adr/0011).
    retry_delays: tuple[float, ...] = Field((0.1, 0.3, 1.0, 3.0), description="in-process retry pauses")
    run_sequencer: bool = True
    read_your_writes_wait: float = Field(5.0, gt=0, le=60, description=(
        "how long a read sent with X-Lookback-After waits for the caller's own write (then 503)"))
    # Separate pools, so one kind of work cannot starve another (docs/adr/0011): the read side
    # and HTTP commands; the consumers' transactions; the relay, projections and ledger wake-ups.
    # Pools open connections as they are needed; the sequencer and the metrics sampler keep one
    # connection each of their own.
    db_pool_size: int = Field(10, ge=1, description="read side and HTTP commands")
    consumer_pool_size: int = Field(4, ge=1, description="consumers' transactions")
    background_pool_size: int = Field(4, ge=2, description="relay, projections, ledger wake-ups")
    # Per consumer: messages the broker may hand over before an ack (prefetch), and handlers
    # running at once. Bounded: a backlog waits in the broker, not in this process's memory.
    consumer_prefetch: int = Field(8, ge=1)
    consumer_concurrency: int = Field(4, ge=1)
    metrics_interval: float = Field(1.0, gt=0, description="how often lags are measured")
    # Where each login's password lives, one file per login: `<role>.db.password` for PostgreSQL,
    # `<user>.amqp.password` for RabbitMQ (container secrets mount here). None: no passwords
    # (trust or certificate authentication).
    secrets_dir: Path | None = None
    # The key that wraps every personal-data subject key (base64 of 32 bytes), or the file that
    # holds it; only the process that holds personal data (the registry) needs it.
    pii_master_key: str | None = None
    pii_master_key_file: Path | None = None
    # Signed identity assertions (shared/assertions.py). A service accepts them from the front ends
    # whose Ed25519 public keys it is given (several, comma-separated, while a key is rotated);
    # the front end that signs them holds the private key. None: no assertions accepted / made.
    assertion_public_key: str | None = None
    assertion_public_key_file: Path | None = None
    assertion_signing_key: str | None = None
    assertion_signing_key_file: Path | None = None
    # Who may read the API documents (OpenAPI /docs, AsyncAPI) and /metrics: anyone, callers with
    # a valid token, or nobody (not served). The embedded default (`lookback up`) makes them
    # public for the newcomer; a deployment keeps them behind a token or turns them off.
    docs_access: Literal["public", "authenticated", "off"] = "authenticated"
    metrics_access: Literal["public", "authenticated", "off"] = "authenticated"

    def database_password(self, role: str) -> str | None:
        return self._secret(f"{role}.db.password")

    def broker_password(self, user: str) -> str | None:
        return self._secret(f"{user}.amqp.password")

    def _secret(self, name: str) -> str | None:
        if self.secrets_dir is None:
            return None
        path = self.secrets_dir / name
        return path.read_text(encoding="utf-8").strip() if path.exists() else None

    def pii_master_key_text(self) -> str | None:
        if self.pii_master_key is not None:
            return self.pii_master_key
        if self.pii_master_key_file is not None:
            return self.pii_master_key_file.read_text(encoding="utf-8").strip()
        return None

    def assertion_public_key_texts(self) -> list[str]:
        text = self.assertion_public_key
        if text is None and self.assertion_public_key_file is not None:
            text = self.assertion_public_key_file.read_text(encoding="utf-8")
        return [part.strip() for part in (text or "").split(",") if part.strip()]

    def assertion_signing_key_text(self) -> str | None:
        if self.assertion_signing_key is not None:
            return self.assertion_signing_key
        if self.assertion_signing_key_file is not None:
            return self.assertion_signing_key_file.read_text(encoding="utf-8").strip()
        return None

    @property
    def deployment_name(self) -> str:
        """Two installations that share a broker differ by their bus prefix, so the prefix names a
        deployment well enough unless one is given (docs/adr/0016)."""
        return self.deployment or self.bus_prefix.strip(".") or "default"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def local_transport(self) -> bool:
        return self.amqp_url is None

    def resolved_checkpoint_dir(self) -> Path:
        return self.checkpoint_dir or self.data_dir / "checkpoints"
