"""Commands, events and their metadata: the vocabulary every service speaks.

Events are frozen pydantic records with a stable type name (`registry.ProjectRegistered`) and a
schema version; the name is stored and routed, never an import path, so code can move freely.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Callable, ClassVar, Iterable

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator, model_validator


class Role(StrEnum):
    CITY_ADMIN = "city_admin"
    INSPECTOR = "inspector"
    DISTRICT_REPORTER = "district_reporter"
    DISTRICT_REVIEWER = "district_reviewer"
    LEADER = "leader"
    AUDITOR = "auditor"

    @property
    def is_district(self) -> bool:
        return self in (Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER)

    @property
    def may_command(self) -> bool:
        return self not in (Role.LEADER, Role.AUDITOR)


class Actor(BaseModel):
    """Who did it. Written into every event's metadata (the notice is about accountability)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    role: Role
    unit: str | None = None

    @model_validator(mode="after")
    def _district_roles_have_a_unit(self) -> "Actor":
        # A district role without a unit would be scoped to nothing, and a query that forgot to
        # check would show it every unit: such a principal cannot exist at all.
        if self.role.is_district and not self.unit:
            raise ValueError(f"a {self.role.value} acts for one reporting unit: give its unit")
        if not self.role.is_district and self.unit is not None:
            raise ValueError(f"a {self.role.value} acts for the whole city: give no unit")
        return self

    @property
    def scope(self) -> str | None:
        """The one unit this principal may see and act on; None for the whole city."""
        return self.unit if self.role.is_district else None


SYSTEM_ACTOR = Actor(id="system", name="Lookback", role=Role.CITY_ADMIN, unit=None)


# C0 control characters and NUL (TAB, LF and CR are text): they break spreadsheets, terminals and
# logs downstream, and nobody types them. Refused wherever a message or a record is built.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _refuse_control_characters(value: Any) -> Any:
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValueError("contains a control character (U+%04X)" % ord(_CONTROL.search(value)[0]))
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _refuse_control_characters(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_control_characters(key)
            _refuse_control_characters(item)
    return value


class Record(BaseModel):
    """A frozen record that refuses unknown fields and control characters in any text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return _refuse_control_characters(value)


class Message(Record):
    pass


class Command(Message):
    """An instruction, named in the imperative (`RaiseProblem`)."""


class Event(Message):
    """A fact, named in the past tense. Subclasses set `type_name` and maybe `schema_version`."""

    type_name: ClassVar[str]
    schema_version: ClassVar[int] = 1


class EventMetadata(BaseModel):
    """The envelope of a stored event; hashed into the ledger with the payload hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    actor: Actor
    occurred_at: AwareDatetime


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to append: payload and metadata already plain JSON-able dicts."""

    stream_id: str
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the store returns it."""

    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    tx_id: int = 0
    tx_seq: int = 0
    global_position: int | None = None

    @property
    def category(self) -> str:
        return self.stream_id.split("-", 1)[0]

    @property
    def correlation_id(self) -> str | None:
        return self.metadata.get("correlation_id")

    @property
    def actor(self) -> Actor:
        return Actor.model_validate(self.metadata["actor"])


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class EventRegistry:
    """Maps stable type names to classes, and upgrades old payloads one version at a time."""

    classes: dict[str, type[Event]] = field(default_factory=dict)
    upcasters: dict[tuple[str, int], Upcaster] = field(default_factory=dict)

    def register(self, *event_classes: type[Event]) -> None:
        for cls in event_classes:
            existing = self.classes.get(cls.type_name)
            if existing is not None and existing is not cls:
                raise ValueError(f"event type {cls.type_name!r} registered twice")
            self.classes[cls.type_name] = cls

    def upcaster(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorate a function turning a `from_version` payload into a `from_version + 1` one."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.upcasters[(type_name, from_version)] = fn
            return fn

        return decorate

    def load(self, event_type: str, schema_version: int, payload: dict[str, Any], *,
             tolerant: bool = False) -> Event:
        """The event, its payload upcast to the current version. A `tolerant` reader (another
        service consuming it) ignores fields it does not know, so a producer may add optional
        fields without breaking consumers that have not been upgraded (docs/events.md)."""
        cls = self.classes.get(event_type)
        if cls is None:
            raise KeyError(f"unknown event type {event_type!r}")
        version = schema_version
        while version < cls.schema_version:
            step = self.upcasters.get((event_type, version))
            if step is None:
                raise KeyError(f"no upcaster for {event_type} v{version}")
            payload = step(payload)
            version += 1
        return cls.model_validate(payload, extra="ignore" if tolerant else None)

    def load_recorded(self, recorded: RecordedEvent) -> Event:
        return self.load(recorded.event_type, recorded.schema_version, recorded.payload)


@dataclass(frozen=True)
class EventContract:
    """What a producing service publishes: its name, the stream categories it alone writes, and
    its event classes. Declared once in the producer's `events.py` (its public contract); the
    kernel takes categories and types from here and names no service itself."""

    service: str
    categories: tuple[str, ...]
    events: tuple[type[Event], ...]

    def __post_init__(self) -> None:
        for event in self.events:
            if not event.type_name.startswith(f"{self.service}."):
                raise ValueError(f"{event.type_name} is not named after its service {self.service}")

    def registry(self) -> EventRegistry:
        """An EventRegistry knowing every event of this contract."""
        registry = EventRegistry()
        registry.register(*self.events)
        return registry

    def owns(self, stream_id: str) -> bool:
        return stream_id.split("-", 1)[0] in self.categories


def new_event(
    stream_id: str,
    event: Event,
    *,
    actor: Actor,
    occurred_at: datetime,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
) -> NewEvent:
    """Wrap a domain event with its metadata, ready for `EventStore.append`."""
    event_id = event_id or uuid.uuid4()
    metadata = EventMetadata(
        event_id=event_id,
        event_type=event.type_name,
        schema_version=event.schema_version,
        correlation_id=correlation_id or event_id,
        causation_id=causation_id,
        actor=actor,
        occurred_at=occurred_at,
    )
    return NewEvent(
        stream_id=stream_id,
        event_id=event_id,
        event_type=event.type_name,
        schema_version=event.schema_version,
        payload=event.model_dump(mode="json"),
        metadata=metadata.model_dump(mode="json"),
    )


def deterministic_id(*parts: Iterable[str] | str) -> uuid.UUID:
    """A UUID derived from names, for events whose retry must reuse the same id."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "lookback:" + "|".join(str(p) for p in parts))
