"""Errors shared by every service.

Domain errors are rejections: the command was understood and refused, nothing was written and a
retry cannot help. Infrastructure errors are the opposite: nothing was decided, a retry may help.
"""
from __future__ import annotations


class LookbackError(Exception):
    """Base of every error this project raises on purpose."""


class DomainError(LookbackError):
    """A command broke a business rule. `code` is stable and machine-readable."""

    code = "rule_broken"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFoundError(DomainError):
    code = "not_found"


class IllegalTransitionError(DomainError):
    code = "illegal_transition"


class ForbiddenError(LookbackError):
    """The principal may not do this (wrong role or another unit's data)."""


class UnauthenticatedError(LookbackError):
    """No valid bearer token."""


class ConcurrencyError(LookbackError):
    """A stream's version was not the expected one; nothing was written."""


class IdempotencyConflictError(LookbackError):
    """Some, not all, of the appended event ids exist already, or exist at other positions."""


class StreamPermissionError(LookbackError):
    """The database role may not write this stream category."""


class TransientError(LookbackError):
    """Database or broker unavailable; the same work may succeed later."""
