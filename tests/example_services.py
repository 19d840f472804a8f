"""A tiny pair of services that exercises the whole path through the real shell.

`example` registers things over HTTP (events in `example-…` streams); `exampleconsumer` consumes
`example.ThingRegistered` and records each one in a read-model table. Used by the bus tests in both
transports, so the same handler code runs over RabbitMQ and in embedded mode.
"""
from __future__ import annotations

import asyncio
import uuid
from typing import ClassVar

from fastapi import APIRouter, Request
from pydantic import Field

from shared.auth import authorize_command
from shared.consuming import ConsumerSpec, HandlerContext
from shared.errors import DomainError
from shared.messages import Command, Event, EventContract
from shared.pipeline import Decision, Handler, StreamSpec
from shared.service import Runtime, ServiceSpec, runtime_of


class ThingRegistered(Event):
    type_name: ClassVar[str] = "example.ThingRegistered"
    thing_id: str
    name: str
    unit: str


class RegisterThing(Command):
    name: str = Field(min_length=1, max_length=50)
    unit: str
    thing_id: str = Field(default_factory=lambda: str(uuid.uuid4()))


CONTRACT = EventContract(service="example", categories=("example",), events=(ThingRegistered,))
REGISTRY = CONTRACT.registry()


def _evolve(state: dict | None, event: Event) -> dict:
    return event.model_dump()


def _thing(cmd: RegisterThing, _deps: None) -> list[StreamSpec[dict | None]]:
    return [StreamSpec(f"example-{cmd.thing_id}", _evolve, None)]


def _decide(x: Decision[RegisterThing, None, None]) -> list[Event]:
    if x.only_state is not None:
        raise DomainError("thing exists")
    if x.command.name == "refuse-me":
        raise DomainError("names like that are refused", code="bad_name")
    return [ThingRegistered(thing_id=x.command.thing_id, name=x.command.name, unit=x.command.unit)]


COMMANDS = {RegisterThing: Handler(streams=_thing, decide=_decide)}

router = APIRouter()


@router.post("/things", status_code=201)
async def register_thing(cmd: RegisterThing, request: Request) -> dict:
    runtime = runtime_of(request)
    actor = runtime.authenticate(request)
    authorize_command(actor, unit=cmd.unit)
    result = await runtime.run(cmd, actor, request)
    return {"thing_id": cmd.thing_id, "version": result.version(f"example-{cmd.thing_id}")}


EXAMPLE = ServiceSpec(contract=CONTRACT, description="Example producer", commands=COMMANDS,
                      router=router)

SEEN_TABLE = """
CREATE TABLE IF NOT EXISTS public.example_seen (
    event_id uuid PRIMARY KEY, thing_id text NOT NULL, name text NOT NULL);
GRANT SELECT, INSERT ON public.example_seen TO lookback_exampleconsumer;
"""


SLOW_STARTED = asyncio.Event()


class Handlers:
    """What the test reactions did: handlers running now and at most at once; for "flaky-N"
    things, which asyncio tasks (one per broker delivery) made the attempts, by event id;
    "stuck" things wait for `release` (which a test may never set)."""

    running = 0
    most = 0
    attempts: dict[str, list[str]] = {}
    release = asyncio.Event()
    started: list[str] = []   # names, in the order their handlers began

    @classmethod
    def reset(cls) -> None:
        cls.running = cls.most = 0
        cls.attempts = {}
        cls.release = asyncio.Event()
        cls.started = []


async def record_thing(ctx: HandlerContext, event: ThingRegistered) -> None:
    Handlers.started.append(event.name)
    Handlers.running += 1
    Handlers.most = max(Handlers.most, Handlers.running)
    try:
        await _record_thing(ctx, event)
    finally:
        Handlers.running -= 1


async def _record_thing(ctx: HandlerContext, event: ThingRegistered) -> None:
    if event.name.startswith("flaky-"):
        tries = Handlers.attempts.setdefault(event.thing_id, [])
        tries.append(asyncio.current_task().get_name())  # unique per task, unlike id()
        if len(tries) <= int(event.name.split("-")[1]):
            raise RuntimeError("a passing failure")
    if event.name.startswith("stuck"):
        await Handlers.release.wait()
    if event.name == "reject-in-consumer":
        raise DomainError("the consumer refuses this one")
    if event.name == "always-fails":
        raise RuntimeError("a bug that no retry will fix")
    if event.name.startswith("slow"):
        SLOW_STARTED.set()
        await asyncio.sleep(1.0)  # long enough for a shutdown to begin meanwhile
    await ctx.conn.execute(
        "INSERT INTO public.example_seen (event_id, thing_id, name) VALUES ($1, $2, $3)",
        ctx.delivery.event_id, event.thing_id, event.name)


consumer_router = APIRouter()


@consumer_router.get("/seen")
async def seen(request: Request) -> list[dict]:
    runtime: Runtime = request.app.state.runtime
    rows = await runtime.pool.fetch("SELECT thing_id, name FROM public.example_seen ORDER BY name")
    return [dict(r) for r in rows]


CONSUMER_CONTRACT = EventContract(service="exampleconsumer", categories=(), events=())


def consumer_spec() -> ServiceSpec:
    return ServiceSpec(
        contract=CONSUMER_CONTRACT, description="Example consumer", router=consumer_router,
        public_paths=frozenset({"/seen"}),
        consumers=[ConsumerSpec(name="exampleconsumer.on-example", source=CONTRACT,
                                reactions={ThingRegistered: record_thing})])
