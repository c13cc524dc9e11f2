"""One typed params loader: sections of params.yaml become dataclasses.

Each module declares the dataclass of the section it reads; `section()` builds it, raising on
unknown or missing keys and on values of the wrong type, so a typo in params.yaml never passes
silently. `value()` reads one dotted key. `resolved()` gives the plain dict that is saved beside
every checkpoint and metric file.

Both record what they read when `AVELIB_PARAMS_READS` names a file (the stage table's test sets it):
every field of a built dataclass, defaulted or not, as a dotted key, one per line.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union

import yaml

T = TypeVar("T")
# a number written in exponent form without a dot, which YAML 1.1 leaves as text
_FLOAT_TEXT = re.compile(r"[+-]?\d+(\.\d*)?[eE][+-]?\d+")


class ParamsError(ValueError):
    """A params file or section that does not match its declared dataclass."""


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params YAML file into a dict (empty file -> {})."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as e:
        raise ParamsError(f"{path}: params file not found") from e
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


READS_ENV = "AVELIB_PARAMS_READS"
_KEY_PATH = re.compile(r"[A-Za-z_][\w]*(\.[\w-]+)*")  # a params key, not a checkpoint's "file: config"


def section(params: Mapping[str, Any], name: str, cls: type[T]) -> T:
    """Build dataclass `cls` from `params[name]` (dotted names reach into nested mappings)."""
    return from_dict(cls, _node(params, name), where=name)


_MISSING = object()


def value(params: Mapping[str, Any], key: str, tp: Any = Any, default: Any = _MISSING) -> Any:
    """The value of dotted `key`, checked against type `tp`; a missing key raises unless a `default` is given
    (the stage runner always passes the key; a library caller may leave it out)."""
    _record([key])
    try:
        node = _node(params, key)
    except ParamsError:
        if default is _MISSING:
            raise
        return default
    return _coerce(tp, node, key)


def _node(params: Mapping[str, Any], key: str) -> Any:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ParamsError(f"params: '{key}' is missing")
        node = node[part]
    return node


def _record(keys: list[str]) -> None:
    path = os.environ.get(READS_ENV)
    if path:
        with open(path, "a") as f:
            f.writelines(f"{k}\n" for k in keys)


def from_dict(cls: type[T], data: Any, where: str = "params") -> T:
    """Build dataclass `cls` from a mapping, checking keys and types recursively."""
    if not isinstance(data, Mapping):
        raise ParamsError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    if _KEY_PATH.fullmatch(where):
        _record([f"{where}.{name}" for name in fields])
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _coerce(hints[name], data[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{where}: required key '{name}' is missing")
    return cls(**values)


def resolved(obj: Any) -> Any:
    """A dataclass (or nesting of them) as plain JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: resolved(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, (list, tuple)):
        return [resolved(v) for v in obj]
    if isinstance(obj, dict):
        return {k: resolved(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arg in args:
            try:
                return _coerce(arg, value, where)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError(f"{where}: {value!r} matches none of {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise ParamsError(f"{where}: expected null, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ParamsError(f"{where}: {value!r} is not one of {list(args)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        out = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        return {k: _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ParamsError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ParamsError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads `1e-05` (no dot) as a string
        raise ParamsError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ParamsError(f"{where}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, str):
            return Path(value)
        raise ParamsError(f"{where}: expected a path string, got {value!r}")
    raise ParamsError(f"{where}: unsupported declared type {tp}")
