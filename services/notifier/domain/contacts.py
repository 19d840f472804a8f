"""Contacts: how an address is shown when it must be shown at all. Pure.

Officials' e-mail addresses are personal data (DOMAIN.md §8); webhook URLs carry a robot's secret
key. Events, logs and screens get the masked forms only.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from shared.errors import ValidationFailed

# Deliberately simple: the directory needs an address a mail server will take, not RFC 5322.
EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
MAX_EMAIL_LENGTH = 254


def mask_email(address: str) -> str:
    """`liaison.echeng@example.invalid` → `li***@example.invalid`."""
    local, _, domain = address.partition("@")
    return f"{local[:2]}***@{domain}" if domain else "***"


def mask_url(url: str) -> str:
    """`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc` → `https://qyapi.weixin.qq.com/***`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/***" if parts.hostname else "***"


def email_problem(address: str) -> str | None:
    if len(address) > MAX_EMAIL_LENGTH or not EMAIL.match(address):
        return "not an e-mail address (name@domain)"
    return None


def url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL"
    return None


def check_contact(email: str | None, webhook_url: str | None) -> None:
    """Every bad field at once, as ValidationFailed (422); the values are never quoted."""
    problems = []
    if email is None and webhook_url is None:
        problems.append(("email", "give an e-mail address, a webhook URL, or both"))
    if email is not None and (reason := email_problem(email)):
        problems.append(("email", reason))
    if webhook_url is not None and (reason := url_problem(webhook_url)):
        problems.append(("webhook_url", reason))
    if problems:
        raise ValidationFailed(problems)
