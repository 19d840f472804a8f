"""The notifier service's composition root: the deadline calendar, reminders, escalations and the
delivery log.

`build_deps` reads the campaign file, the notifier's own settings (`LOOKBACK_NOTIFIER_…`) and
the contacts file, and builds the senders: SMTP when a host is configured, else the mail folder
under the data directory; webhooks always. The clock is the wall clock, or a simulated one
(`LOOKBACK_CLOCK`, or `LOOKBACK_NOTIFIER_SIMULATED_CLOCK_START`; moved by the kernel's `POST
/clock`) for tests and demos; the same clock drives the whole service (commands, consumers, the
scheduler).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI

from services.notifier.api import router
from services.notifier.channels import MailFolderSender, Sender, SmtpSender, WebhookSender
from services.notifier.directory import read_contacts_file
from services.notifier.events import CONTRACT, Channel
from services.notifier.handlers import COMMANDS, NotifierDeps
from services.notifier.projections import PROJECTIONS
from services.notifier.scheduler import run_scheduler
from services.notifier.settings import NotifierSettings
from services.notifier.subscribers import CONSUMERS
from services.notifier.texts import Texts
from shared.campaign import Campaign, load_campaign
from shared.clock import Clock, SimulatedClock, clock_from_setting
from shared.service import ServiceSpec, create_service_app
from shared.settings import Settings


def default_clock(notifier_settings: NotifierSettings, settings: Settings) -> Clock:
    """`LOOKBACK_NOTIFIER_SIMULATED_CLOCK_START` if set (older than LOOKBACK_CLOCK), else the
    kernel's clock setting."""
    start = notifier_settings.simulated_clock_start
    return SimulatedClock(start) if start is not None else clock_from_setting(settings.clock)


def build_deps(settings: Settings, pool: asyncpg.Pool, *,
               notifier_settings: NotifierSettings | None = None, clock: Clock | None = None,
               campaign: Campaign | None = None) -> NotifierDeps:
    ns = notifier_settings or NotifierSettings()
    campaign = campaign or load_campaign(settings.campaign_file)
    senders: dict[Channel, Sender] = {Channel.WEBHOOK: WebhookSender(ns.webhook_timeout)}
    if ns.smtp_host is not None:
        senders[Channel.EMAIL] = SmtpSender(ns)
    else:
        senders[Channel.MAIL_FOLDER] = MailFolderSender(ns.mail_dir or settings.data_dir / "mail",
                                                        ns.sender)
    return NotifierDeps(
        campaign=campaign, texts=Texts(campaign), settings=ns, clock=clock or default_clock(ns, settings),
        email_channel=Channel.EMAIL if ns.smtp_host is not None else Channel.MAIL_FOLDER,
        message_domain=ns.message_domain, senders=senders,
        contacts_from_file=(read_contacts_file(ns.contacts_file, campaign)
                            if ns.contacts_file is not None else ()))


SPEC: ServiceSpec[NotifierDeps] = ServiceSpec(
    contract=CONTRACT,
    description="Lookback notifier service: the deadline calendar of every unit, holiday-aware "
                "reminders, 催办 and 督办, each delivered exactly once (e-mail, mail folder, "
                "webhook)",
    commands=COMMANDS, router=router, consumers=CONSUMERS, projections=PROJECTIONS,
    build_deps=build_deps, background=[run_scheduler],
    migrations=Path(__file__).with_name("sql"))


def create_app(settings: Settings | None = None, *,
               notifier_settings: NotifierSettings | None = None, clock: Clock | None = None,
               campaign: Campaign | None = None, **kwargs: Any) -> FastAPI:
    """`clock`: the clock of the whole service (default: the notifier settings say which);
    `notifier_settings`, `campaign`: instead of the environment and the campaign file."""
    ns = notifier_settings or NotifierSettings()
    settings = settings or Settings()
    the_clock = clock or default_clock(ns, settings)
    spec = dataclasses.replace(SPEC, build_deps=lambda s, pool: build_deps(
        s, pool, notifier_settings=ns, clock=the_clock, campaign=campaign))
    return create_service_app(spec, settings, clock=the_clock, **kwargs)
