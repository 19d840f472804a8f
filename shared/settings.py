"""Settings for every service process, from the environment (`LOOKBACK_` prefix) or arguments.

No URL means the embedded default: an embedded PostgreSQL (pgserver) and the local transport.
"""
from __future__ import annotations

from pathlib import Path

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
    graceful_timeout: float = 30.0
    retry_delays: tuple[float, ...] = Field((0.2, 0.8, 3.2), description="in-process retry pauses")
    run_sequencer: bool = True
    db_pool_size: int = 10

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def local_transport(self) -> bool:
        return self.amqp_url is None

    def resolved_checkpoint_dir(self) -> Path:
        return self.checkpoint_dir or self.data_dir / "checkpoints"
