"""Declaring node parameters with clear errors for values of the wrong type."""
from __future__ import annotations

import dataclasses

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


class ParameterError(ValueError):
    """A parameter value a node cannot use; the message names the parameter."""


def declare(node: Node, name: str, default, description: str = ""):
    """Declare ``name`` with ``default`` and return its value, typed like the default.

    Integers are accepted where a float is expected (YAML writes ``8`` for 8.0); anything else
    of the wrong type raises ParameterError naming the parameter.
    """
    descriptor = ParameterDescriptor(description=description, dynamic_typing=True)
    value = node.declare_parameter(name, default, descriptor).value
    number = (int, float)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, number):
        ok = isinstance(value, number) and not isinstance(value, bool) and (
            isinstance(default, float) or float(value).is_integer())
    elif isinstance(default, list):
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, number) and not isinstance(v, bool) for v in value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ParameterError(f"parameter '{name}' must be {_kind(default)}, got {value!r}")
    if isinstance(default, list):
        return [float(v) for v in value]
    return type(default)(value)


def declare_vector(node: Node, name: str, default: list[float], description: str = "") -> list[float]:
    """``declare`` for a list of fixed length, the length of ``default`` (a translation, an rpy)."""
    value = declare(node, name, default, description)
    if len(value) != len(default):
        raise ParameterError(f"parameter '{name}' takes {len(default)} numbers, got {value}")
    return value


def declare_dataclass(node: Node, prefix: str, cls):
    """An instance of dataclass ``cls`` whose fields are parameters ``<prefix>.<field>``."""
    return cls(**{f.name: declare(node, f"{prefix}.{f.name}", f.default)
                  for f in dataclasses.fields(cls)})


def _kind(default) -> str:
    if isinstance(default, bool):
        return "a bool"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, list):
        return "a list of numbers"
    return f"a {type(default).__name__}"
