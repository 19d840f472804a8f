"""The notifier's own settings (`LOOKBACK_NOTIFIER_` prefix), beside the kernel's `Settings`.

With no SMTP host, e-mail goes to a mail folder (one `.eml` file per message) under the data
directory: the embedded default, where a newcomer can open what would have been sent. With no
contacts file, every unit's liaison and leader get obviously fake example addresses
(`liaison.echeng@example.invalid`) unless `example_contacts` is turned off.
"""
from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOKBACK_NOTIFIER_", extra="ignore")

    smtp_host: str | None = Field(None, description="SMTP server; none = the mail folder")
    smtp_port: int = 25
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = 30.0
    sender: str = Field("回头看提醒 <noreply@lookback.example.invalid>",
                        description="From: of every e-mail; its domain ends every Message-ID")
    mail_dir: Path | None = Field(None, description="default: <LOOKBACK_DATA_DIR>/mail")
    contacts_file: Path | None = Field(None, description="TOML: [[contacts]] unit, audience, "
                                       "email, webhook_url, webhook_format")
    example_contacts: bool = Field(True, description="fill missing contacts with fake "
                                   "@example.invalid addresses (demo, tests)")
    retry_delays: tuple[float, ...] = Field((2.0, 10.0, 60.0),
                                            description="pauses between send attempts (seconds)")
    webhook_timeout: float = 10.0
    parallel_sends: int = Field(4, ge=1)
    takeover_check_seconds: float = Field(
        30.0, gt=0, description="while another instance's claim is unfinished, how often to see "
        "whether that instance is gone")
    simulated_clock_start: AwareDatetime | None = Field(
        None, description="run on a simulated clock starting here, moved by POST /clock "
        "(tests and demos only)")

    @property
    def message_domain(self) -> str:
        _, address = parseaddr(self.sender)
        domain = address.rpartition("@")[2]
        return domain or "lookback.invalid"
