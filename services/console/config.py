"""The console's own settings (`LOOKBACK_CONSOLE_` prefix), beside the kernel's `Settings`.

Where the four services are, how long a session lasts, whether cookies are `Secure` (behind
TLS), and the limits of evidence uploads. `lookback up` fills the services' addresses itself.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("registry", "rectification", "inspection", "notifier")


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOKBACK_CONSOLE_", extra="ignore")

    registry_url: str = "http://127.0.0.1:8701"
    rectification_url: str = "http://127.0.0.1:8702"
    inspection_url: str = "http://127.0.0.1:8703"
    notifier_url: str = "http://127.0.0.1:8704"
    # Behind TLS (a reverse proxy), cookies must say Secure, or a browser sends them in clear.
    cookie_secure: bool = False
    session_hours: float = Field(8.0, gt=0, description="a session ends this long after sign-in")
    evidence_dir: Path | None = Field(None, description="evidence files; default <data_dir>/evidence")
    evidence_max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    issuer: str = Field("lookback-console", description="who signs the identity assertions")
    # Sign-in throttling: after `slow_after` failures each attempt waits 2^k seconds (k grows with
    # every failure, at most `max_wait_seconds`); `lock_after` failures lock for `lock_minutes`.
    slow_after: int = 3
    max_wait_seconds: int = 60
    lock_after_account: int = 10
    lock_after_address: int = 30
    lock_minutes: int = 15
    service_timeout: float = Field(15.0, description="seconds to wait for a service's answer")

    def service_urls(self) -> dict[str, str]:
        return {name: getattr(self, f"{name}_url").rstrip("/") for name in SERVICES}
