"""Errors shared by every service, each with its one HTTP status and machine-readable code.

Domain errors are rejections: the command was understood and refused, nothing was written and a
retry cannot help. Infrastructure errors are the opposite: nothing was decided, a retry may help.
The HTTP layer (shared/service.py) maps every `LookbackError` by its `status` and `code`, in one
place, so a rule has one status wherever it is broken.
"""
from __future__ import annotations

from typing import ClassVar, Iterable, NamedTuple


class LookbackError(Exception):
    """Base of every error this project raises on purpose."""

    status: ClassVar[int] = 500
    code: str = "internal_error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class DomainError(LookbackError):
    """A command broke a business rule (HTTP 409: it conflicts with the state it met)."""

    status = 409
    code = "rule_broken"


class NotFoundError(DomainError):
    status = 404
    code = "not_found"


class IllegalTransitionError(DomainError):
    code = "illegal_transition"


class ForbiddenError(LookbackError):
    """The principal may not do this (wrong role or another unit's data)."""

    status = 403
    code = "forbidden"


class UnauthenticatedError(LookbackError):
    """No valid bearer token."""

    status = 401
    code = "unauthenticated"


class ConcurrencyError(LookbackError):
    """A stream's version was not the expected one; nothing was written."""

    status = 409
    code = "concurrent_change"


class IdempotencyConflictError(LookbackError):
    """Some, not all, of the appended event ids exist already, or exist at other positions."""

    status = 409
    code = "idempotency_conflict"


class StreamPermissionError(LookbackError):
    """The database role may not write this stream category."""

    status = 403
    code = "stream_forbidden"


class TransientError(LookbackError):
    """Database or broker unavailable; the same work may succeed later."""

    status = 503
    code = "unavailable"


class FieldProblem(NamedTuple):
    """One rejected field: `field` is a dotted path (`households.3.phone`), `reason` says why."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class ValidationFailed(DomainError):
    """Input broke one or more field rules; every problem is reported at once (HTTP 422)."""

    status = 422
    code = "validation_failed"

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: tuple[FieldProblem, ...] = tuple(FieldProblem(*p) for p in problems)
        if not self.problems:
            raise ValueError("ValidationFailed needs at least one problem")
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in self.problems))
