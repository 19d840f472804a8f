"""The HTTP API as another program reads it: one error body, the bearer scheme, every status.

Each service's OpenAPI document is finished here, once, for every service (docs/adr/0015):

- the error body every refusal carries (`ErrorBody`: the code, a Chinese message a person can act
  on, the detail; shared/service.py and the edge in shared/http.py send it) replaces FastAPI's
  `HTTPValidationError`, which describes a body this API never sends;
- routes that are not public require the bearer scheme through FastAPI's own `HTTPBearer` (as a
  dependency it only reads the header: the edge has already refused a missing or unknown token
  before the route runs), so the document declares the scheme and which operations need it;
- every operation lists the statuses the shell can answer with, by rule: 401 and 403 where a
  token is required, 404 where the path names something, 409 for commands, 413 where there is a
  body, 422 everywhere (the edge refuses control characters in any path or query), 500, and 503
  where the store is read. A route adds what only it answers (a 415) with `errors(...)`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Security
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import MESSAGES_ZH

BEARER_SCHEME = "bearer"
BEARER = HTTPBearer(
    auto_error=False, scheme_name=BEARER_SCHEME, bearerFormat="lb_… token or signed assertion",
    description="A principal's token (`lb_…`) or a signed identity assertion from the trusted "
                "front end. 持有人令牌：账号令牌或前端签发的身份断言。")
# As a route dependency: declares the scheme in the document; the edge did the checking.
REQUIRES_TOKEN = Security(BEARER)


class FieldProblemBody(BaseModel):
    """One refused field (shared/errors.py `FieldProblem`). 一个被拒绝的字段及原因。"""

    field: str = Field(description="dotted path of the field (`households.3.phone`); 字段路径",
                       examples=["households.3.phone"])
    reason: str = Field(description="why it was refused; 原因", examples=["not a mobile number"])
    valid: list[str] | None = Field(
        None, description="the accepted codes, when the value had to be one of them; 可选值")


class ErrorBody(BaseModel):
    """Every refusal's body, whatever the status. 所有错误应答的统一格式。"""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "validation_failed", "message": MESSAGES_ZH[422],
         "detail": [{"field": "unit", "reason": "unknown unit 'x'", "valid": ["echeng"]}]},
        {"error": "forbidden", "message": MESSAGES_ZH[403], "detail": "role leader sends no commands"},
    ]})

    error: str = Field(description="machine-readable code (`validation_failed`, `forbidden`, …); "
                                   "机器可读的错误码")
    message: str = Field(description="what a person reads, in Chinese; 给人看的中文提示")
    detail: list[FieldProblemBody] | str = Field(
        description="each refused field (422), else the developer's text (English); 详情")


class ImportRefusedBody(ErrorBody):
    """A refused import: every refused row, nothing written. 导入被拒：逐行列出错误，未写入任何数据。"""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "import_refused",
         "message": "导入未完成：以下行有误，请修改后重新上传（本次未导入任何数据）。",
         "detail": [{"field": "projects[3].unit", "reason": "unknown unit 'x'"}],
         "rows": [{"sheet": "projects", "row": 3, "column": "unit", "reason": "unknown unit 'x'"}]}]})

    rows: list[dict[str, Any]] = Field(
        description="each refused row: sheet, row number, column, reason; 每个出错的行")


# What each status means to a caller, in both languages.
STATUS_TEXT: Mapping[int, str] = {
    401: "Missing, unknown or expired bearer token. 未登录或令牌无效。",
    403: "The principal may not do this (role, or another unit's data). 无权进行此操作。",
    404: "No such record. 记录不存在。",
    409: "Refused by a business rule or a concurrent change; nothing written. 与当前状态冲突，未写入。",
    413: "The body is larger than this path accepts. 内容过大。",
    415: "Unsupported upload format. 不支持的上传格式。",
    422: "Invalid input: every refused field with its reason; nothing written. 输入有误，逐项列出。",
    500: "Unexpected error; it is logged. 系统内部错误。",
    503: "Database or broker unavailable, or a read not yet consistent; retry later. 暂不可用。",
}
_COMMAND_METHODS = frozenset({"post", "put", "patch", "delete"})
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
_ERROR_REF = "#/components/schemas/ErrorBody"


def errors(*statuses: int, model: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the statuses only this route answers with (the rest come by rule)."""
    return {status: {"model": model, "description": STATUS_TEXT[status]} for status in statuses}


def include(app: FastAPI, router: APIRouter, *, public: Callable[[str], bool]) -> None:
    """Include `router`'s routes in `app`: those whose path is not public require the token."""
    open_routes, token_routes = APIRouter(), APIRouter()
    for route in router.routes:
        is_open = isinstance(route, APIRoute) and public(route.path)
        (open_routes if is_open else token_routes).routes.append(route)
    app.include_router(open_routes)
    app.include_router(token_routes, dependencies=[REQUIRES_TOKEN])


def install_openapi(app: FastAPI, *,
                    store_free_tags: Iterable[str] = ("operations", "vocabulary")) -> None:
    """`app.openapi()` builds FastAPI's document once, then completes it (see the module)."""
    store_free = frozenset(store_free_tags)

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description,
                              routes=app.routes, tags=app.openapi_tags, servers=app.servers)
            app.openapi_schema = complete(doc, store_free=store_free)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]  # FastAPI's documented way to hook it


def complete(doc: dict[str, Any], *, store_free: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The document with the error body, the statuses by rule and no `HTTPValidationError`."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    schemas.update(ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}").pop("$defs", {}))
    schemas["ErrorBody"] = _schema(ErrorBody)
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                _complete_operation(path, method, operation, store_free)
    return doc


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def _complete_operation(path: str, method: str, operation: dict[str, Any],
                        store_free: frozenset[str]) -> None:
    statuses = {422, 500}
    if operation.get("security"):
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    if method in _COMMAND_METHODS:
        statuses.add(409)
    if "requestBody" in operation:
        statuses.add(413)
    if not store_free.intersection(operation.get("tags", ())):
        statuses.add(503)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in sorted(statuses):
        answer = responses.setdefault(str(status), {"description": STATUS_TEXT[status]})
        content = answer.get("content", {}).get("application/json", {})
        if status >= 400 and (not content or _names_fastapi_validation(content.get("schema"))):
            answer["description"] = STATUS_TEXT[status]
            answer["content"] = {"application/json": {"schema": {"$ref": _ERROR_REF}}}


def _names_fastapi_validation(schema: Any) -> bool:
    return isinstance(schema, dict) and any(
        str(schema.get("$ref", "")).endswith("/" + name) for name in _FASTAPI_VALIDATION)


# ----- the answers of the routes every service serves (shared/service.py) ------------------------


class Liveness(BaseModel):
    status: str = Field(examples=["alive"])
    service: str = Field(examples=["registry"])


class Readiness(BaseModel):
    """Ready when every check says `ok` (503 otherwise, with the same body)."""

    ready: bool
    busy: bool = Field(description="a pool has every connection in use; 连接池已满")
    checks: dict[str, str] = Field(description="each part: `ok` or why not; 各部分状态")
    pools: dict[str, str] = Field(description="connections in use per pool (`3/10`)")


class Term(BaseModel):
    code: str
    label: str = Field(description="Chinese label; 中文名称")
    aliases: list[str] | None = Field(None, description="other words the bulk import accepts")
    note: str | None = None


class TermSet(BaseModel):
    kind: str = Field(examples=["operating_status"])
    title: str = Field(examples=["运营状态"])
    terms: list[Term]


class VocabularyAnswer(BaseModel):
    service: str
    sets: list[TermSet]


class AsyncApiDocument(BaseModel):
    """The service's AsyncAPI document (its channels and messages on the bus)."""

    model_config = ConfigDict(extra="allow")

    asyncapi: str = Field(examples=["3.1.0"])
    info: dict[str, Any]


def text_content(media_type: str, *, binary: bool = False) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a 200 that is a file or text, not JSON."""
    schema = {"type": "string", "format": "binary"} if binary else {"type": "string"}
    return {200: {"content": {media_type: {"schema": schema}}}}


class Answer(BaseModel):
    """Base of the services' answer models: the fields a client may rely on are declared; a
    read model's further columns pass through (`extra="allow"`), so the model documents the
    answer without trimming it."""

    model_config = ConfigDict(extra="allow")


class Page(Answer):
    total: int = Field(description="every match, not only this page; 总数")
    limit: int
    offset: int
