"""Structured logs: JSON in containers, console on a TTY; never personal data.

One line per handled message (`message_handled`) with service, consumer, event id and type,
correlation id and outcome. Values that look like mainland phone numbers are masked by a processor
as a last line of defence; the first line is not logging personal fields at all.

Whatever logs through the standard library (uvicorn, asyncpg, aio-pika, FastStream, Python's
`warnings`) goes through the same processors and renderer: with JSON on, every line the process
writes is one JSON object, so a log shipper never has to guess (docs/adr/0017). An exception is
logged as its type and its last frames, never its message: a message may quote input (a name, a
phone number).
"""
from __future__ import annotations

import logging
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def _mask_phones(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        if isinstance(value, str) and _PHONE.search(value):
            event_dict[key] = _PHONE.sub(r"\1****\2", value)
    return event_dict


def _exception_without_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """`exc_info` becomes the error's type and last frames (file:line function)."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        event_dict["error_type"] = exc_info[0].__name__
        event_dict["frames"] = [f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                for f in traceback.extract_tb(exc_info[2])[-5:]]
    return event_dict


# The standard library's loggers that only chatter at INFO: uvicorn says it started and where it
# listens, which our own `service_started` and `listening` lines say once for every app. httpx
# (the console and the demo calling the services) logs every request's URL with its query string,
# which can carry a searched name: our own access lines say the same by path template instead.
# pgserver narrates starting the embedded PostgreSQL line by line.
QUIET = {"uvicorn": logging.WARNING, "httpx": logging.WARNING, "httpcore": logging.WARNING,
         "pgserver": logging.WARNING}


def is_json(json: bool | None) -> bool:
    """JSON unless told otherwise or writing to a person's terminal."""
    return not sys.stderr.isatty() if json is None else json


def configure_logging(*, json: bool | None = None, level: str = "INFO") -> None:
    json = is_json(json)
    threshold = logging.getLevelName(level.upper())
    renderer: Any = (structlog.processors.JSONRenderer(ensure_ascii=False) if json
                     else structlog.dev.ConsoleRenderer())
    common: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_phones,
        _exception_without_message,
    ]
    structlog.configure(
        processors=[*common, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *common],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers = [handler]  # ours alone, also when configured twice (tests, `lookback up`)
    root.setLevel(threshold)
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, threshold))
    logging.captureWarnings(True)  # `warnings.warn` of a library, as a `py.warnings` line


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger(**initial)
