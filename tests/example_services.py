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
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import authorize_command
from shared.consuming import ConsumerSpec, HandlerContext
from shared.errors import DomainError
from shared.handling import execute
from shared.messages import Event, EventRegistry
from shared.service import Runtime, ServiceSpec, new_correlation_id


class ThingRegistered(Event):
    type_name: ClassVar[str] = "example.ThingRegistered"
    thing_id: str
    name: str
    unit: str


class RegisterThing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=50)
    unit: str


REGISTRY = EventRegistry()
REGISTRY.register(ThingRegistered)


def _evolve(state: dict | None, event: Event) -> dict:
    return event.model_dump()


def example_routes() -> APIRouter:
    router = APIRouter()

    @router.post("/things", status_code=201)
    async def register_thing(cmd: RegisterThing, request: Request) -> dict:
        runtime: Runtime = request.app.state.runtime
        actor = runtime.authenticate(request)
        authorize_command(actor, unit=cmd.unit)
        thing_id = str(uuid.uuid4())

        def decide(state: dict | None) -> list[Event]:
            if state is not None:
                raise DomainError("thing exists")
            if cmd.name == "refuse-me":
                raise DomainError("names like that are refused", code="bad_name")
            return [ThingRegistered(thing_id=thing_id, name=cmd.name, unit=cmd.unit)]

        outcome = await execute(runtime.store, REGISTRY, f"example-{thing_id}", evolve=_evolve,
                                initial=None, decide=decide, actor=actor, now=runtime.clock(),
                                correlation_id=new_correlation_id(request))
        return {"thing_id": thing_id, "version": outcome.version}

    return router


EXAMPLE = ServiceSpec(name="example", description="Example producer", events=[ThingRegistered],
                      routes=example_routes)

SEEN_TABLE = """
CREATE TABLE IF NOT EXISTS public.example_seen (
    event_id uuid PRIMARY KEY, thing_id text NOT NULL, name text NOT NULL);
GRANT SELECT, INSERT ON public.example_seen TO lookback_example;
"""


SLOW_STARTED = asyncio.Event()


async def record_thing(ctx: HandlerContext, event: ThingRegistered) -> None:
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


def consumer_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/seen")
    async def seen(request: Request) -> list[dict]:
        runtime: Runtime = request.app.state.runtime
        rows = await runtime.pool.fetch("SELECT thing_id, name FROM public.example_seen ORDER BY name")
        return [dict(r) for r in rows]

    return router


def consumer_spec() -> ServiceSpec:
    return ServiceSpec(
        name="exampleconsumer", description="Example consumer", events=[],
        routes=consumer_routes,
        consumers=[ConsumerSpec(name="exampleconsumer.on-example", producer="example",
                                reactions={ThingRegistered: record_thing})])
