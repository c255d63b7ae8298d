"""Options as frozen dataclasses, and the front ends derived from their fields.

Each stage declares its options once, as a frozen dataclass whose fields mirror the stage's
keyword arguments (:class:`mocap.cleanup.options.CleanupConfig`, ...). A field made with
:func:`option` carries what the front ends need in its metadata: the command-line flag,
its help text, the allowed values or the open range of numbers, and whether the service's
JSON may set it. From that one declaration:

- :func:`check_options` validates an instance (called from each ``__post_init__``);
- :func:`add_arguments` adds the argparse arguments and :func:`from_namespace` builds the
  options back from the parsed namespace (``mocap capture``, ``lift``, ``batch``);
- :func:`from_json` builds them from a flat JSON object and :func:`json_defaults` lists
  what it accepts (the capture service's ``options``).

Light: imports only the standard library.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import typing
from typing import Any, Iterable, Mapping

from mocap.errors import MocapError


class OptionError(MocapError, ValueError):
    """A bad option value: the CLI prints it on one line, the service answers 422 with it."""


def option(default: Any, help: str, *, flag: str | None = None, negate: bool = False,
           choices: Iterable[Any] | None = None, bounds: tuple[float, float] | None = None, closed: bool = False,
           unit: str = "", metavar: str | None = None, json: bool = True) -> Any:
    """A dataclass field with the metadata the front ends read.

    Args:
        default: the default value (immutable; a frozen dataclass for a nested group).
        help: the command-line help text (also the field's documentation).
        flag: the command-line flag (``"--cutoff-hz"``); None: not on the command line.
        negate: a bool field set by a ``store_true`` flag that turns it off (``--no-level``).
        choices: the allowed values (None is allowed when it is the default).
        bounds: (low, high), the open range of a number; ``closed``: the ends are allowed too.
        unit: the number's unit, for messages (``"Hz"``, ``"metres"``).
        metavar: the value's name in the command-line help.
        json: whether the service's JSON options may set it (under the field's name).
    """
    meta = {"help": help, "flag": flag, "negate": negate, "choices": None if choices is None else tuple(choices),
            "bounds": bounds, "closed": closed, "unit": unit, "metavar": metavar, "json": json}
    return dataclasses.field(default=default, metadata=meta)


def label(cls_or_obj: Any, name: str) -> str:
    """``name`` with its command-line flag, for messages: ``cutoff_hz (--cutoff-hz)``."""
    flag = _fields(type(cls_or_obj) if not isinstance(cls_or_obj, type) else cls_or_obj)[name].metadata.get("flag")
    return f"{name} ({flag})" if flag else name


def check_options(obj: Any) -> None:
    """Check every field of ``obj`` against its metadata's ``choices`` and ``bounds``.

    OptionError naming the option (and its flag) and the values it takes.
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None and _optional(hints[f.name]):
            continue
        choices, bounds = f.metadata.get("choices"), f.metadata.get("bounds")
        if choices is not None and value not in choices:
            raise OptionError(f"{label(obj, f.name)} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        if bounds is not None:
            low, high = bounds
            unit = f" {f.metadata['unit']}" if f.metadata.get("unit") else ""
            closed = f.metadata.get("closed")
            inside = isinstance(value, (int, float)) and (low <= value <= high if closed else low < value < high)
            if isinstance(value, bool) or not inside:
                ends = "from {:g} to {:g}" if closed else "between {:g} and {:g}"
                raise OptionError(f"{label(obj, f.name)} must be a number {ends.format(low, high)}{unit}, "
                                  f"got {value!r}")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _base_types(hint: Any) -> tuple[type, ...]:
    """The types a hint allows, None left out: ``float | None`` -> (float,)."""
    args = typing.get_args(hint)
    types = args if args else (hint,)
    return tuple(t for t in types if t is not type(None))


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser, cls: type, names: Iterable[str] | None = None, *,
                  help: Mapping[str, str] | None = None) -> None:
    """Add the command-line arguments of ``cls``'s fields (those with a flag) to ``parser``.

    Args:
        names: the fields to add, in this order (default: every field with a flag, in
            declaration order).
        help: help texts that replace the fields' own for this parser.
    """
    fields = _fields(cls)
    hints = _hints(cls)
    for name in (names if names is not None else [n for n, f in fields.items() if f.metadata.get("flag")]):
        f = fields[name]
        meta = f.metadata
        if not meta.get("flag"):
            raise ValueError(f"{cls.__name__}.{name} has no command-line flag")
        kwargs: dict[str, Any] = {"help": (help or {}).get(name, meta["help"])}
        flags = meta["flag"] if isinstance(meta["flag"], tuple) else (meta["flag"],)
        if bool in _base_types(hints[name]):
            if f.default is not bool(meta["negate"]):
                raise ValueError(f"{cls.__name__}.{name}: a flag can only change a bool from its default")
            kwargs["action"] = "store_true"
        else:
            kwargs["default"] = f.default
            base = _base_types(hints[name])
            if str not in base and (float in base or int in base):
                kwargs["type"] = float if float in base else int
            if meta.get("choices") is not None:
                kwargs["choices"] = [c for c in meta["choices"] if c is not None]
            if meta.get("metavar"):
                kwargs["metavar"] = meta["metavar"]
        parser.add_argument(*flags, **kwargs)


def from_namespace(cls: type, namespace: argparse.Namespace, **overrides: Any) -> Any:
    """``cls`` built from a parsed namespace: fields whose flag the parser had take its value,
    nested option groups are built the same way, the rest keep their defaults."""
    values: dict[str, Any] = {}
    for name, f in _fields(cls).items():
        if name in overrides:
            values[name] = overrides[name]
        elif dataclasses.is_dataclass(f.default):
            values[name] = from_namespace(type(f.default), namespace)
        elif f.metadata.get("flag"):
            flag = f.metadata["flag"]
            dest = _dest(flag[-1] if isinstance(flag, tuple) else flag)
            if hasattr(namespace, dest):
                value = getattr(namespace, dest)
                values[name] = (not value) if f.metadata.get("negate") else value
    return cls(**values)


def json_defaults(cls: type) -> dict[str, Any]:
    """The JSON options of ``cls`` (nested groups flattened) and their defaults."""
    out: dict[str, Any] = {}
    for name, f in _fields(cls).items():
        if dataclasses.is_dataclass(f.default):
            for key, value in json_defaults(type(f.default)).items():
                if key in out:
                    raise ValueError(f"JSON option {key} is declared twice in {cls.__name__}")
                out[key] = value
        elif f.metadata.get("json"):
            if name in out:
                raise ValueError(f"JSON option {name} is declared twice in {cls.__name__}")
            out[name] = f.default
    return out


def _check_json_type(cls: type, name: str, value: Any) -> None:
    if value is None:
        if not _optional(_hints(cls)[name]):
            raise OptionError(f"option {name} cannot be null")
        return
    base = _base_types(_hints(cls)[name])
    if bool in base:
        ok = isinstance(value, bool)
        wanted = "true or false"
    elif float in base or int in base:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if int in base and str in base:  # an id or a name
            ok = ok or isinstance(value, str)
        wanted = "a number"
    else:
        ok = isinstance(value, base)
        wanted = " or ".join(t.__name__ for t in base)
    if not ok:
        raise OptionError(f"option {name} must be {wanted}, got {value!r}")


def from_json(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls`` built from a flat JSON object (keys: :func:`json_defaults`); the missing
    options keep their defaults. OptionError for a value of the wrong JSON type or out of
    range; unknown keys are the caller's to reject."""
    kwargs: dict[str, Any] = {}
    for name, f in _fields(cls).items():
        if dataclasses.is_dataclass(f.default):
            kwargs[name] = from_json(type(f.default), values)
        elif f.metadata.get("json") and name in values:
            value = values[name]
            _check_json_type(cls, name, value)
            if float in _base_types(_hints(cls)[name]) and isinstance(value, int):
                value = float(value)
            kwargs[name] = value
    return cls(**kwargs)


def to_json(obj: Any) -> dict[str, Any]:
    """The flat JSON options of ``obj`` (the inverse of :func:`from_json`)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(f.default):
            out.update(to_json(value))
        elif f.metadata.get("json"):
            out[f.name] = value
    return out
