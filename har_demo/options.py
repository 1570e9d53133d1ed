"""The one ``KEY=VALUE`` grammar: ``train.py --config``, ``explain --opt`` and the ``HAR_*``
settings all read values through it, so ``false`` means the same everywhere.

A value is read in two steps:

1. ``parse_value`` - the text alone: ``true``/``false`` (any case) -> bool, ``null``/``none``
   (any case) -> None, a whole number -> int, a decimal number (``3e-4``) -> float, ``[...]`` /
   ``{...}`` -> JSON list / object, ``"..."`` -> the string inside the quotes, anything else -> the
   string as written. Used where an option's type is not known (``Any``).
2. ``from_text`` / ``check`` - against the option's *type* (a dataclass field's annotation, a
   builder parameter's annotation or default): a wrong type is one ``ConfigError`` line naming
   the option (``--config cnn_gen.batch_norm: expected true or false, got 'off'``), never a
   silent wrong value (``bool("False")`` is True). Text for a string option stays text as
   written; a list option also takes ``a,b,c``.

This module is a leaf: every layer may import it (it imports only ``errors``).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import operator
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigError

_NULL = ("null", "none")
_BOOL = {"true": True, "false": False}


def parse_value(text: str) -> Any:
    """Text -> bool / None / int / float / JSON list or object / str (module doc, step 1)."""
    t = text.strip()
    low = t.lower()
    if low in _BOOL:
        return _BOOL[low]
    if low in _NULL:
        return None
    if t[:1] in ("[", "{", '"'):
        try:
            return json.loads(t)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{t[:40]!r} is not valid JSON ({err.msg})") from None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        value = float(t)
    except ValueError:
        return t
    return value if math.isfinite(value) else t  # "nan" / "inf" stay text


def split_assignment(item: str, what: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)`` (both stripped); one line when there is no ``=``."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{what} {item[:60]!r} must look like KEY=VALUE")
    return key.strip(), raw.strip()


# ---- types ----------------------------------------------------------------------------------------
def kind_of_default(default: Any) -> Any:
    """The type an option has when only its default is known (None: any value)."""
    if default is None or default is inspect.Parameter.empty:
        return Any
    if isinstance(default, (tuple, list)):
        inner = {kind_of_default(v) for v in default}
        elem = inner.pop() if len(inner) == 1 else Any
        return tuple[elem, ...] if isinstance(default, tuple) else list[elem]
    if isinstance(default, (bool, int, float, str, dict)):
        return type(default)
    return Any


def _split_optional(kind: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); a union of several non-None types stays a union."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        optional = len(args) < len(typing.get_args(kind))
        if len(args) == 1:
            return args[0], optional
        return functools.reduce(operator.or_, args), optional
    return kind, False


def _sequence(kind: Any) -> tuple[type, Any] | None:
    """(tuple or list, element type) for sequence types, else None."""
    if kind in (list, tuple):
        return kind, Any
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(kind) if a is not Ellipsis]
        return origin, (args[0] if args else Any)
    return None


def describe(kind: Any) -> str:
    """A type as a user reads it: ``true or false``, ``a whole number``, ``a list of numbers`` ..."""
    base, optional = _split_optional(kind)
    seq = _sequence(base)
    if base is bool:
        text = "true or false"
    elif base is int:
        text = "a whole number"
    elif base is float:
        text = "a number"
    elif base is str:
        text = "text"
    elif base is dict or typing.get_origin(base) is dict:
        text = "a JSON object"
    elif seq is not None:
        inner = describe(seq[1]) if seq[1] is not Any else "values"
        text = "a list of " + {"a whole number": "whole numbers", "a number": "numbers", "text": "names"}.get(inner, inner)
    elif typing.get_origin(base) in (typing.Union, types.UnionType):
        text = " or ".join(describe(a) for a in typing.get_args(base))
    else:
        text = "a value"
    return text + (" (or null)" if optional else "")


def check(value: Any, kind: Any, where: str) -> Any:
    """An already-typed value (JSON, a card, a keyword) against ``kind``; returns it normalised
    (int -> float for a float option; a sequence -> a list, as JSON has it). ``ConfigError`` if wrong."""
    if kind is Any or kind is object or kind is inspect.Parameter.empty:
        return value
    base, optional = _split_optional(kind)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: expected {describe(kind)}, got null")
    seq = _sequence(base)
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif base is str:
        ok = isinstance(value, str)
    elif base is dict or typing.get_origin(base) is dict:
        ok = isinstance(value, dict)
    elif seq is not None:
        ok = isinstance(value, (list, tuple))
        if ok:
            value = [check(v, seq[1], where) for v in value]
    elif typing.get_origin(base) in (typing.Union, types.UnionType):
        for member in typing.get_args(base):
            try:
                return check(value, member, where)
            except ConfigError:
                continue
        ok = False
    else:  # a type this grammar does not know: the option's own code checks it
        return value
    if not ok:
        raise ConfigError(f"{where}: expected {describe(kind)}, got {_show(value)}")
    return value


def from_text(text: str, kind: Any, where: str) -> Any:
    """``KEY=VALUE`` text against the option's type (module doc, step 2)."""
    t = text.strip()
    if kind is Any or kind is object or kind is inspect.Parameter.empty:
        return _parse(t, where)
    base, optional = _split_optional(kind)
    if optional and t.lower() in _NULL:
        return None
    seq = _sequence(base)
    if base is str:
        return _parse(t, where) if t.startswith('"') else t
    if seq is not None and not t.startswith("["):  # a,b,c (one item: a one-item list)
        items = [s for s in (p.strip() for p in t.split(",")) if s]
        return [from_text(s, seq[1], where) for s in items]
    value = _parse(t, where)
    if base is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected {describe(kind)}, got {t[:40]!r}")
    return check(value, kind, where)


def _parse(text: str, where: str) -> Any:
    try:
        return parse_value(text)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (bool, int, float, list, dict)) or value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---- option tables ------------------------------------------------------------------------------------
def signature_kinds(func: Callable, skip: tuple[str, ...] = ("self",)) -> tuple[dict[str, Any], bool]:
    """``({parameter: type}, open)`` of a callable: types from annotations, else from defaults;
    ``open`` when it takes ``**kwargs`` (unlisted keys may still be accepted)."""
    sig = inspect.signature(func, eval_str=True)
    out: dict[str, Any] = {}
    open_ = False
    for name, p in sig.parameters.items():
        if name in skip or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            open_ = True
            continue
        out[name] = p.annotation if p.annotation is not p.empty else kind_of_default(p.default)
    return out, open_


def check_keys(given: Mapping[str, Any], known: Mapping[str, Any] | set[str], where: str, what: str = "option") -> None:
    """Unknown keys -> one line listing the known ones."""
    bad = sorted(set(given) - set(known))
    if bad:
        raise ConfigError(f"{where}: unknown {what}(s) {', '.join(bad)}; known: {', '.join(sorted(known)) or 'none'}")
