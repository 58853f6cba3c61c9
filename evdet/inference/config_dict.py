"""Frozen option dataclasses ↔ plain dicts, for checkpoints, run configs and logs.

A config is a frozen dataclass whose fields are primitive values (str, int, float, bool, None), tuples or
lists of them, mappings of them, or nested config dataclasses. :func:`config_to_dict` gives a dict of plain
types only (so a checkpoint holding it loads with ``torch.load(weights_only=True)``); :func:`config_from_dict`
rebuilds the dataclass, recursing into nested configs and refusing unknown keys.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["config_from_dict", "config_to_dict", "field_docs"]

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-types copy of a config dataclass (nested configs become dicts, tuples become lists)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config_to_dict: expected a dataclass instance, got {type(config).__name__}")
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def config_from_dict(cls: type[C], values: Mapping[str, Any] | C | None) -> C:
    """Rebuild config ``cls`` from a dict (as written by :func:`config_to_dict`); None → the defaults.

    Nested config fields are rebuilt from their dicts; list values of tuple-typed fields become tuples.

    Raises:
        TypeError: ``values`` is neither a dict nor a ``cls``.
        ValueError: unknown keys (named, with the valid ones), or a value the dataclass rejects.
    """
    if values is None:
        return cls()
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise TypeError(f"{cls.__name__}: expected a dict or {cls.__name__}, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown option(s) {unknown}; valid options are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _typed(hints[name], value, f"{cls.__name__}.{name}") for name, value in values.items()}
    return cls(**kwargs)


_PRIMITIVES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               type(None): "null"}


def _is(option: type, value: Any) -> bool:
    if option is bool or isinstance(value, bool):  # YAML's true is no number, and 1 no boolean
        return option is bool and isinstance(value, bool)
    if option is float:
        return isinstance(value, (int, float))
    return isinstance(value, option)


def _typed(hint: Any, value: Any, where: str) -> Any:
    """``value`` converted to what field type ``hint`` expects (nested configs, tuples).

    Raises:
        ValueError: a field of primitive types (int, float, str, bool, None and their unions) given a value
            of none of them (``max_epochs: 1.5``, ``lr: true``, ``lr: "abc"``), naming ``where``.
    """
    options = _options(hint)
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
            return config_from_dict(option, value)
    if isinstance(value, list) and any(typing.get_origin(o) is tuple for o in options):
        return tuple(value)
    if all(o in _PRIMITIVES for o in options) and not any(_is(o, value) for o in options):
        raise ValueError(f"{where} must be {' or '.join(_PRIMITIVES[o] for o in options)}, got {value!r}")
    return value


def _options(hint: Any) -> tuple[Any, ...]:
    """The members of a union type (``X | None`` → ``(X, NoneType)``), or the type itself."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        return args
    return (hint,)


def field_docs(cls: type) -> dict[str, str]:
    """Each field's description from the ``Attributes:`` section of a config dataclass's docstring
    (``name: text`` lines, continuation lines indented further; ``a, b: text`` and ``a / b: text``
    describe several fields), whitespace joined: the one place an option is documented, reused by
    command lines generated from the fields."""
    lines = (cls.__doc__ or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:") + 1
    except StopIteration:
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    docs: dict[str, str] = {}
    current: list[str] = []
    indent = None
    for line in lines[start:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        head, sep, text = line.strip().partition(": ")
        keys = [k.strip() for k in head.replace("/", ",").split(",")] if sep else []
        if depth == indent and keys and all(k in names for k in keys):
            current = keys
            for k in keys:
                docs[k] = text.strip()
        else:
            for k in current:
                docs[k] += " " + line.strip()
    return docs
