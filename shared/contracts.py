"""Event schemas as a published, versioned contract, and the check that keeps it honest.

Each event type is published as one JSON Schema per schema version, generated from its pydantic
class: `docs/events/schemas/<type>/v<version>.json`. Another team builds on those files. The
check (`contract_problems`) fails when the code no longer matches what was published:

- a **compatible** change (a new optional field, a new enum value, new descriptions) is allowed
  without a new schema version — old payloads still load and tolerant consumers drop what they do
  not know — but the published file must be regenerated (`lookback events publish`);
- an **incompatible** change (a field removed or retyped, a field newly required, an enum value
  removed) needs a new schema version and an upcaster from the previous one
  (`EventRegistry.upcaster`), and the old version's file stays published;
- every older published version must have its upcaster, so stored events of that version load.

The rules are in docs/events.md.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from shared.messages import Event, EventContract

_IGNORED = {"title", "description", "examples", "default", "$comment"}


def schema_of(event: type[Event]) -> dict[str, Any]:
    """The published JSON Schema of an event class at its current schema version."""
    schema = event.model_json_schema()
    schema["$id"] = f"urn:lookback:event:{event.type_name}:v{event.schema_version}"
    schema["x-lookback-type"] = event.type_name
    schema["x-lookback-schema-version"] = event.schema_version
    return schema


def schema_path(root: Path, type_name: str, version: int) -> Path:
    return root / type_name / f"v{version}.json"


def render(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def publish(root: Path, contracts: Iterable[EventContract]) -> list[Path]:
    """Write every event's current schema (older versions' files are left as published)."""
    written = []
    for contract in contracts:
        for event in contract.events:
            path = schema_path(root, event.type_name, event.schema_version)
            path.parent.mkdir(parents=True, exist_ok=True)
            text = render(schema_of(event))
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                written.append(path)
    return written


def contract_problems(root: Path, contracts: Iterable[EventContract]) -> list[str]:
    """Every way the code and the published schemas disagree; empty when they agree."""
    problems: list[str] = []
    for contract in contracts:
        registry = contract.registry()
        for event in contract.events:
            name, version = event.type_name, event.schema_version
            path = schema_path(root, name, version)
            generated = schema_of(event)
            if not path.exists():
                problems.append(f"{name} v{version} is not published: run `lookback events publish`")
            else:
                published = json.loads(path.read_text(encoding="utf-8"))
                if render(published) != render(generated):
                    breaks = incompatibilities(published, generated)
                    if breaks:
                        problems.append(
                            f"{name} v{version} changed incompatibly ({'; '.join(breaks)}): give it "
                            f"schema_version {version + 1} and an upcaster from v{version}")
                    else:
                        problems.append(f"{name} v{version} changed compatibly: run "
                                        "`lookback events publish` to publish it")
            for older in range(1, version):
                if schema_path(root, name, older).exists() and (name, older) not in registry.upcasters:
                    problems.append(f"{name} v{older} is published but has no upcaster to "
                                    f"v{older + 1}: stored v{older} events would not load")
    return problems


def incompatibilities(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What a consumer of `old` or a store of `old` payloads would trip over in `new`."""
    breaks: list[str] = []
    _compare_object(old, new, old, new, "", breaks)
    return breaks


def _compare_object(old: Mapping[str, Any], new: Mapping[str, Any], old_root: Mapping[str, Any],
                    new_root: Mapping[str, Any], where: str, breaks: list[str]) -> None:
    old, new = _deref(old, old_root), _deref(new, new_root)
    if "enum" in old or "enum" in new:
        removed = set(old.get("enum", ())) - set(new.get("enum", ()))
        if removed:
            place = where.rstrip(".") or "value"
            breaks.append(f"{place}: {sorted(map(str, removed))} no longer allowed")
        return
    if "properties" in old or "properties" in new:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for field in old_props:
            if field not in new_props:
                breaks.append(f"{where}{field} removed")
            else:
                _compare_object(old_props[field], new_props[field], old_root, new_root,
                                f"{where}{field}.", breaks)
        for field in set(new.get("required", ())) - set(old.get("required", ())):
            breaks.append(f"{where}{field} is now required")
        return
    for key in ("items", "additionalProperties"):
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            _compare_object(old[key], new[key], old_root, new_root, f"{where}[]", breaks)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in old or key in new:
            if len(old.get(key, ())) != len(new.get(key, ())):
                breaks.append(f"{where.rstrip('.') or 'value'} changed shape")
                return
            for i, (a, b) in enumerate(zip(old.get(key, ()), new.get(key, ()))):
                _compare_object(a, b, old_root, new_root, f"{where}{key}[{i}].", breaks)
    if _plain(old) != _plain(new):
        breaks.append(f"{where.rstrip('.') or 'value'} changed type")


def _deref(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _plain(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a leaf schema that decide what values it takes."""
    return {k: v for k, v in schema.items()
            if k not in _IGNORED and k not in ("properties", "required", "items", "anyOf",
                                              "oneOf", "allOf", "prefixItems", "$defs")
            and not k.startswith("x-")}
