"""Checks of values read from user input (TOML files, keyword arguments), each error naming
the file, table and key and what was expected: ``ConfigError``, the tables of a run file
(``main_table``, ``known_keys``) and the values in them (``integer_key``, ``name_list``).
Every reader of user input (configurations, run files, sweep specs, training run files)
uses these."""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any


def is_integer(value: Any, low: int | None = None, high: int | None = None) -> bool:
    """An integer (Python or NumPy; not a bool) within [low, high] (an end None: open)."""
    return (isinstance(value, Integral) and not isinstance(value, bool)
            and (low is None or value >= low) and (high is None or value <= high))


def is_number(value: Any, low: float = -math.inf, high: float = math.inf) -> bool:
    """A finite real number (int or float; not a bool) within [low, high]."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high)


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def main_table(data: Any, name: str, tables: tuple[str, ...], keys: tuple[str, ...],
               source: str, names: str) -> dict:
    """The ``[name]`` table of a run, sweep or training file given as nested dicts, checked:
    ``data`` holds only ``tables`` (``variant`` as ``[[variant]]``), ``[name]`` is there and
    holds only ``keys``. ``names`` says what ``[name]`` names, for the message when missing."""
    listing = ", ".join("[[variant]]" if t == "variant" else f"[{t}]" for t in tables)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a table of tables ({listing}), got "
                          f"{type(data).__name__}")
    extra = sorted(set(data) - set(tables))
    if extra:
        raise ConfigError(f"{source}: unknown table [{extra[0]}] (expected {listing})")
    table = data.get(name)
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{name}] is missing: it names {names}")
    known_keys(table, keys, f"{source}: [{name}]")
    return table


def known_keys(table: dict, keys: tuple[str, ...], where: str) -> None:
    extra = sorted(set(table) - set(keys))
    if extra:
        raise ConfigError(f"{where} unknown key '{extra[0]}' (expected one of "
                          f"{', '.join(keys)})")


def name_list(run: dict, key: str, where: str) -> list[str]:
    value = run.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where} {key}: expected a non-empty list of names, got {value!r}")
    return value


def integer_key(table: dict, key: str, where: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if not is_integer(value, low, high):
        raise ConfigError(f"{where} {key}: expected an integer in [{low}, {high}], "
                          f"got {value!r}")
    return value
