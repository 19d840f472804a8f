"""Errors shared by every service, each with its one HTTP status and machine-readable code.

Domain errors are rejections: the command was understood and refused, nothing was written and a
retry cannot help. Infrastructure errors are the opposite: nothing was decided, a retry may help.
The HTTP layer (shared/service.py) maps every `LookbackError` by its `status` and `code`, in one
place, so a rule has one status wherever it is broken.
"""
from __future__ import annotations

from typing import Any, ClassVar, Iterable, NamedTuple


class LookbackError(Exception):
    """Base of every error this project raises on purpose.

    `str(error)` is the developer's text (English, for logs); `zh` is what a person reads in the
    answer's `message`: Chinese, saying what to do. Without one, the answer says in Chinese what
    kind of refusal it was (`MESSAGES_ZH` by status).
    """

    status: ClassVar[int] = 500
    code: str = "internal_error"

    def __init__(self, message: str = "", *, code: str | None = None, zh: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.zh = zh

    @property
    def message_zh(self) -> str:
        return self.zh or MESSAGES_ZH.get(self.status, MESSAGES_ZH[500])


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


# What a person reads when an error names no Chinese message of its own.
MESSAGES_ZH = {
    401: "未登录或登录已失效，请重新登录后再试。",
    403: "您没有权限进行此操作。",
    404: "未找到所请求的记录，请检查后重试。",
    409: "该操作与当前状态不符，请刷新后重试。",
    413: "上传的内容过大。",
    422: "填写的内容有误，请按提示修改后重新提交。",
    500: "系统内部错误，已记录，请稍后再试。",
    503: "系统暂时不可用，请稍后再试。",
}


class FieldProblem(NamedTuple):
    """One rejected field: `field` is a dotted path (`households.3.phone`), `reason` says why;
    `valid` lists the accepted codes when the value had to be one of them."""

    field: str
    reason: str
    valid: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"field": self.field, "reason": self.reason}
        if self.valid:
            body["valid"] = list(self.valid)
        return body


class ValidationFailed(DomainError):
    """Input broke one or more field rules; every problem is reported at once (HTTP 422)."""

    status = 422
    code = "validation_failed"

    def __init__(self, problems: Iterable[tuple[str, str] | tuple[str, str, tuple[str, ...]]], *,
                 zh: str | None = None) -> None:
        self.problems: tuple[FieldProblem, ...] = tuple(FieldProblem(*p) for p in problems)
        if not self.problems:
            raise ValueError("ValidationFailed needs at least one problem")
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in self.problems), zh=zh)
