"""Settings objects: the typed, frozen knobs of a running service, one field per knob.

A reader follows a knob from the command line to the line where it acts: the flag
`--max-num-seqs` is the field `ServerSettings.max_num_seqs`, which the server hands to its
engine by that name. Nothing travels as `**kwargs`: an unknown name raises, and so does a value
of the wrong type (`True` is not a batch size, "0.5" is not a rate), before anything changes.

    settings = ServerSettings(time_scale=0.1, batching="static")
    settings.replace(max_num_seqs=8)            # a new, checked object; the old one unchanged
    ServerSettings.from_dict({"max_num_seq": 8})  # TypeError: unknown setting 'max_num_seq'

Each service's settings class adds its bounds in `check()`. The CLI builds its flags from the
fields (`add_arguments`), so a new field is a new flag with the same name and help.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

S = TypeVar("S", bound="Settings")


def setting(default: Any, help: str, **options: Any) -> Any:
    """A settings field with the help text its command-line flag shows."""
    return dataclasses.field(default=default, metadata={"help": help, **options})


def required(help: str) -> Any:
    """A settings field with no default: the caller (or the flag) must give it."""
    return dataclasses.field(metadata={"help": help})


def _allowed_types(annotation: Any) -> tuple[type, ...]:
    """(int,), (float, int), (str, NoneType), ... for an annotation such as `int | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for part in typing.get_args(annotation) for t in _allowed_types(part))
    if annotation is float:
        return (float, int)  # 1 is a fine number of seconds
    if annotation is None or annotation is type(None):
        return (type(None),)
    origin = typing.get_origin(annotation)
    return (origin,) if origin is not None else (annotation,)


class Settings:
    """The shared behaviour of every settings dataclass (subclasses are frozen dataclasses)."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            allowed = _allowed_types(hints[field.name])
            wrong_bool = isinstance(value, bool) and bool not in allowed
            if wrong_bool or not isinstance(value, allowed):
                kinds = " or ".join(sorted(t.__name__ for t in allowed))
                raise TypeError(f"{field.name} must be {kinds}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{field.name} must be a finite number, got {value}")
        self.check()

    def check(self) -> None:
        """Bounds beyond the types; a subclass raises ValueError naming the field."""

    # --- building and changing ---------------------------------------------------------------

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any]) -> S:
        """Settings from JSON-like data; unknown names raise TypeError, listing the known."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            names = ", ".join(sorted(known))
            raise TypeError(f"unknown setting {unknown[0]!r} for {cls.__name__}; known: {names}")
        # JSON has no tuples: a list given for a tuple field (allow_callback_host) is one.
        data = {key: tuple(v) if isinstance(v, list) else v for key, v in data.items()}
        missing = [
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in data
        ]
        if missing:
            flag = "--" + missing[0].replace("_", "-")
            raise TypeError(f"{cls.__name__} needs {missing[0]} (the flag {flag})")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def replace(self: S, **changes: Any) -> S:
        """A copy with `changes`, checked as a new object is: a bad change never applies."""
        return type(self).from_dict({**self.to_dict(), **changes})

    # --- the command line ----------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
        """One flag per field, `--max-num-seqs` for `max_num_seqs`, with the field's help."""
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if field.name in skip:
                continue
            flag = "--" + field.name.replace("_", "-")
            allowed = [t for t in _allowed_types(hints[field.name]) if t is not type(None)]
            options: dict[str, Any] = {"dest": field.name, "help": field.metadata.get("help")}
            if "choices" in field.metadata:
                options["choices"] = field.metadata["choices"]
            if allowed[0] is bool:
                options["action"] = argparse.BooleanOptionalAction
            elif allowed[0] is tuple:
                options["action"] = "append"  # repeat the flag for each value
            else:
                options["type"] = allowed[0]
            parser.add_argument(flag, default=argparse.SUPPRESS, **options)

    @classmethod
    def from_arguments(cls: type[S], args: argparse.Namespace, **defaults: Any) -> S:
        """The fields given on the command line, over `defaults`, over the class's own."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        given = {name: value for name, value in vars(args).items() if name in names}
        return cls.from_dict({**defaults, **given})


# ---------------------------------------------------------------------------------------------
# What every service shares: the limits of its HTTP server, which uvicorn enforces through
# `http_limits.LimitedHttpProtocol` (each service's settings class inherits these fields)

DEFAULT_MAX_HEADER_BYTES = 16 * 1024  # Node's and h11's limit; nginx's is 4 x 8 KB
DEFAULT_MAX_HEADER_COUNT = 100  # Apache's LimitRequestFields
DEFAULT_HEADER_TIMEOUT_S = (
    60.0  # Node's headersTimeout; a request head is one packet, but a busy client
)
# (a notebook kernel running a load generator) can take seconds to write it
DEFAULT_BODY_TIMEOUT_S = 60.0  # a body after its head: 4 MB (the default cap) at 70 kB/s
DEFAULT_IDLE_TIMEOUT_S = 75.0  # uvicorn's keep-alive as the course runs it (nginx's is 75 s)
DEFAULT_MAX_CONNECTIONS = 2048  # twice what the course's clients ever open (1,000)


@dataclass(frozen=True, kw_only=True)
class HttpLimits(Settings):
    """The HTTP server's limits: past each, an answer in OpenAI's error shape and a closed
    connection, before the app sees anything (see `http_limits.py`)."""

    max_header_bytes: int = setting(
        DEFAULT_MAX_HEADER_BYTES, "request line and headers, in bytes, at most (431 past it)"
    )
    max_header_count: int = setting(
        DEFAULT_MAX_HEADER_COUNT, "headers in one request at most (431 past it)"
    )
    header_timeout_s: float = setting(
        DEFAULT_HEADER_TIMEOUT_S,
        "a request's line and headers must arrive within this of its first byte (408 past it)",
    )
    body_timeout_s: float = setting(
        DEFAULT_BODY_TIMEOUT_S,
        "a request's body must arrive within this of its headers (408 past it)",
    )
    idle_timeout_s: float = setting(
        DEFAULT_IDLE_TIMEOUT_S,
        "a connection that sends nothing for this long is closed, a new one as a kept-alive one",
    )
    max_connections: int = setting(
        DEFAULT_MAX_CONNECTIONS,
        "connections open at once at most: one more is closed at once (keep it under ulimit -n)",
    )

    def check(self) -> None:
        for name in ("max_header_bytes", "max_header_count", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("header_timeout_s", "body_timeout_s", "idle_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def http_limits(self) -> HttpLimits:
        """Just these fields, for the HTTP server (a service's settings hold more)."""
        names = [f.name for f in dataclasses.fields(HttpLimits)]
        return HttpLimits(**{name: getattr(self, name) for name in names})
