"""The messages' wording: Jinja2 templates (templates/*.txt.j2), filled by domain/messages.py.

Plain text, so no HTML escaping; `StrictUndefined`, so a template naming a fact the context does
not have fails loudly in tests instead of sending a message with a hole in it.
"""
from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.notifier.domain.calendar import PlannedReminder
from services.notifier.domain.messages import message_context
from services.notifier.domain.obligations import ObligationState
from shared.campaign import Campaign

TEMPLATES = Path(__file__).with_name("templates")


class Texts:
    """Renders a reminder's subject and body; pure once built."""

    def __init__(self, campaign: Campaign, folder: Path = TEMPLATES) -> None:
        self.campaign = campaign
        self.env = Environment(loader=FileSystemLoader(folder), autoescape=False,
                               undefined=StrictUndefined, keep_trailing_newline=False)
        self.subject = self.env.get_template("subject.txt.j2")
        self.body = self.env.get_template("body.txt.j2")

    def render(self, state: ObligationState, reminder: PlannedReminder) -> tuple[str, str]:
        context = message_context(state, reminder, self.campaign)
        subject = " ".join(self.subject.render(context).split())
        return subject, self.body.render(context).strip() + "\n"
