"""A person-readable history of one subject (a project, a problem item, a draw, …) across services.

Every sequenced event whose stream is the subject's (`<category>-<id>`, or the id given as the
whole stream id) or whose payload mentions the id anywhere (a ledger entry naming the project, a
draw that picked it, a finding about it), in ledger order, with who, when and what it said.

The kernel knows no service: the Chinese name of each event type comes from the application
(`labels`); without one the type's own name is shown. Personal data never shows: sealed fields
(per-subject ciphertext, `pii1.…`) print as 「已加密」, phone numbers are masked, e-mail addresses
are hidden, and nothing is decrypted here. Times are shown in the zone the application passes (the
campaign's). A mention is found by a JSON path scan of every payload:
the history is for people asking about one subject, not a hot path.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import asyncpg

from shared.personal_data import is_sealed, mask_phone

ROLE_LABELS = {"city_admin": "市局管理员", "inspector": "检查员", "district_reporter": "区级填报人",
               "district_reviewer": "区级审核人", "leader": "领导", "auditor": "审计员",
               "system": "系统"}
_MAX_TEXT = 60
_MAX_FIELDS = 12

_QUERY = """
    SELECT l.global_position, e.stream_id, e.stream_version, e.event_type, e.payload, e.metadata
      FROM es.ledger l JOIN es.events e ON e.event_id = l.event_id
     WHERE e.stream_id = $1
        OR substr(e.stream_id, strpos(e.stream_id, '-') + 1) = $1
        OR jsonb_path_exists(e.payload, '$.** ? (@ == $id)', jsonb_build_object('id', $1::text))
     ORDER BY l.global_position
     LIMIT $2"""


@dataclass(frozen=True)
class HistoryEntry:
    position: int
    stream_id: str
    stream_version: int
    event_type: str
    label: str
    at: str
    actor_name: str
    actor_role: str
    changes: dict[str, str]

    def text(self) -> str:
        changed = "；".join(f"{k}: {v}" for k, v in self.changes.items())
        return (f"#{self.position} {self.at} {self.actor_name}（{self.actor_role}）{self.label}"
                f"〔{self.stream_id} 第{self.stream_version}条〕" + (f" {changed}" if changed else ""))

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "stream_id": self.stream_id,
                "stream_version": self.stream_version, "event_type": self.event_type,
                "label": self.label, "at": self.at,
                "actor": {"name": self.actor_name, "role": self.actor_role},
                "changes": self.changes, "text": self.text()}


def mask_value(key: str, value: Any) -> str:
    """One payload value as a person reads it, with personal data masked."""
    lowered = key.lower()
    if isinstance(value, str):
        if is_sealed(value) or lowered.endswith("_sealed"):
            return "已加密"
        if "email" in lowered or "mail" in lowered:
            return "（不显示）"
        if "phone" in lowered or "mobile" in lowered:
            return value if "*" in value else mask_phone(value)  # `*_masked` fields already are
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"
    if isinstance(value, bool):
        return "是" if value else "否"
    if value is None:
        return "无"
    if isinstance(value, list):
        if all(isinstance(v, (str, int)) for v in value) and len(value) <= 5:
            return "、".join(mask_value(key, v) for v in value) or "（空）"
        return f"{len(value)}项"
    if isinstance(value, dict):
        return f"{len(value)}项"
    return str(value)


def _moment(value: Any, zone: tzinfo) -> str:
    try:
        return datetime.fromisoformat(str(value)).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(value)


def entry(row: Mapping[str, Any], labels: Mapping[str, str], zone: tzinfo = UTC) -> HistoryEntry:
    payload, metadata = row["payload"], row["metadata"]
    actor = metadata.get("actor") or {}
    changes = {k: mask_value(k, v) for k, v in list(payload.items())[:_MAX_FIELDS]}
    if len(payload) > _MAX_FIELDS:
        changes["…"] = f"另有{len(payload) - _MAX_FIELDS}项"
    return HistoryEntry(
        position=row["global_position"], stream_id=row["stream_id"],
        stream_version=row["stream_version"], event_type=row["event_type"],
        label=labels.get(row["event_type"], row["event_type"]),
        at=_moment(metadata.get("occurred_at"), zone),
        actor_name=str(actor.get("name") or actor.get("id") or "系统"),
        actor_role=ROLE_LABELS.get(str(actor.get("role")), str(actor.get("role") or "系统")),
        changes=changes)


async def history(conn: asyncpg.Connection, subject: str, *, labels: Mapping[str, str] = {},
                  zone: tzinfo = UTC, limit: int = 1000) -> list[HistoryEntry]:
    """Every sequenced event of or about `subject`, oldest first (at most `limit`)."""
    rows = await conn.fetch(_QUERY, subject, limit)
    return [entry(_decoded(r), labels, zone) for r in rows]


def _decoded(row: Mapping[str, Any]) -> dict[str, Any]:
    decoded = dict(row)
    for name in ("payload", "metadata"):
        if isinstance(decoded[name], str):
            decoded[name] = json.loads(decoded[name])
    return decoded
