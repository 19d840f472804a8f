"""How far an OpenAPI document is from one a client generator can use (`python -m
bench.openapi_report` prints them for every service; the tests hold them at zero).

The counts are the list of issue 14 (docs/adr/0015): operations; without a structured response
model (a JSON answer that is neither a named schema nor an object with properties, nor a file
with its media type); requiring a token yet not documenting 401 and 403; documenting FastAPI's
`HTTPValidationError` (a body the API never sends); without a summary and a description.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True)
class Gaps:
    operations: int
    without_response_model: int
    requiring_token: int
    documenting_401_403: int
    without_401_403: int
    http_validation_error: int
    without_description: int
    security_schemes: int

    def __add__(self, other: Gaps) -> Gaps:
        return Gaps(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values(),
                                            strict=True)))


def operations(doc: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _resolve(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        resolved: Mapping[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def is_structured(doc: Mapping[str, Any], schema: Mapping[str, Any] | None, media: str) -> bool:
    """A named object schema (or a list of them) for JSON; a string schema for a file or text."""
    if not schema:
        return False
    media = media.split(";")[0].strip()
    if media != "application/json" and not media.endswith("+json"):
        return schema.get("type") == "string"
    schema = _resolve(doc, schema)
    if schema.get("type") == "array":
        return is_structured(doc, schema.get("items"), media)
    return bool(schema.get("properties"))


def success_structured(doc: Mapping[str, Any], operation: Mapping[str, Any]) -> bool:
    answers = [(int(status), answer) for status, answer in operation.get("responses", {}).items()
               if status.isdigit() and 200 <= int(status) < 300]
    if not answers:
        return False
    for status, answer in answers:
        content = answer.get("content") or {}
        if not content and status != 204:
            return False
        if not all(is_structured(doc, c.get("schema"), media) for media, c in content.items()):
            return False
    return True


def names_http_validation_error(operation: Mapping[str, Any]) -> bool:
    return "HTTPValidationError" in json.dumps(operation.get("responses", {}))


def has_description(operation: Mapping[str, Any]) -> bool:
    return bool(str(operation.get("summary", "")).strip()
                and str(operation.get("description", "")).strip())


def requires_token(operation: Mapping[str, Any]) -> bool:
    return bool(operation.get("security"))


def gaps(doc: Mapping[str, Any]) -> Gaps:
    ops = [op for _, _, op in operations(doc)]
    secured = [op for op in ops if requires_token(op)]
    return Gaps(
        operations=len(ops),
        without_response_model=sum(not success_structured(doc, op) for op in ops),
        requiring_token=len(secured),
        documenting_401_403=sum({"401", "403"} <= set(op.get("responses", {})) for op in ops),
        without_401_403=sum(not {"401", "403"} <= set(op.get("responses", {})) for op in secured),
        http_validation_error=sum(names_http_validation_error(op) for op in ops),
        without_description=sum(not has_description(op) for op in ops),
        security_schemes=len(doc.get("components", {}).get("securitySchemes", {})))
