"""Notifier events: the public contract (none published yet)."""
from __future__ import annotations

from shared.messages import EventContract

# The notifier's published contract: its name and the stream categories only it writes.
CONTRACT = EventContract(service="notifier", categories=("notice", "reminder"), events=())
