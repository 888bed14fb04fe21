"""Checks of values read from user input (TOML files, keyword arguments), each error naming
the file, table and key and what was expected: ``ConfigError``; what a value is
(``is_integer``, ``is_number``, ``is_real``, ``is_text``, and ``integer_in`` /
``number_in`` for tables of checks); the tables of a run file (``main_table``,
``known_keys``, ``once_each``) and the values in them (``checked_key``, ``integer_key``,
``choice_key``, ``name_list``). Every reader of user input (configurations, run files,
sweep specs, training run files, traces, keyword arguments) uses these."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Iterable
from numbers import Integral, Real
from typing import Any

Check = Callable[[Any], bool]


def is_integer(value: Any, low: int | None = None, high: int | None = None) -> bool:
    """An integer (Python or NumPy; not a bool) within [low, high] (an end None: open)."""
    return (isinstance(value, Integral) and not isinstance(value, bool)
            and (low is None or value >= low) and (high is None or value <= high))


def is_real(value: Any) -> bool:
    """A real number (Python or NumPy, integer or float; not a bool), infinities and NaN
    included."""
    return isinstance(value, Real) and not isinstance(value, bool)


def is_number(value: Any, low: float = -math.inf, high: float = math.inf) -> bool:
    """A finite real number (``is_real``) within [low, high]; an integer of any size is
    finite (no conversion to float)."""
    return (is_real(value) and (isinstance(value, Integral) or math.isfinite(value))
            and low <= value <= high)


def is_text(value: Any) -> bool:
    """A string holding more than white space."""
    return isinstance(value, str) and bool(value.strip())


def integer_in(low: int, high: int) -> Check:
    """The check ``is_integer(value, low, high)``."""
    return lambda value: is_integer(value, low, high)


def number_in(low: float, high: float) -> Check:
    """The check ``is_number(value, low, high)``."""
    return lambda value: is_number(value, low, high)


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
    """A ConfigError unless every key of ``table`` is one of ``keys``; ``where`` (the file
    and table) starts the message."""
    extra = sorted(set(table) - set(keys))
    if extra:
        raise ConfigError(f"{where} unknown key '{extra[0]}' (expected one of "
                          f"{', '.join(keys)})")


def checked_key(table: dict, key: str, where: str, default: Any, check: Check,
                expected: str) -> Any:
    """``table[key]`` (``default`` when absent) if ``check`` accepts it, else a ConfigError
    "``where`` ``key``: expected ``expected``, got VALUE" (VALUE shortened, as ``reprlib``
    does); a check and its expectation, as in the tables of ``hbfpsim.config.SCHEMA``."""
    value = table.get(key, default)
    if not check(value):
        raise ConfigError(f"{where} {key}: expected {expected}, got {reprlib.repr(value)}")
    return value


def choice_key(table: dict, key: str, where: str, default: Any,
               choices: tuple[str, ...]) -> str:
    """``table[key]`` (``default`` when absent) if it is one of ``choices``, else a
    ConfigError listing them."""
    return checked_key(table, key, where, default, lambda value: value in choices,
                       f"one of {', '.join(choices)}")


def name_list(run: dict, key: str, where: str) -> list[str]:
    """``run[key]``: a name or a non-empty list of names (``is_text``), as a list."""
    value = run.get(key)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(is_text(v) for v in value):
        raise ConfigError(f"{where} {key}: expected a non-empty list of names, got {value!r}")
    return value


def once_each(parts: Iterable[tuple[str, dict]], source: str) -> dict:
    """The (place, table) pairs a reader flattens, as one table: a key that two places give
    (``[axes] rows`` and ``[axes.array] rows``) is a ConfigError "``source``: KEY is given
    twice: in [PLACE] and [PLACE]" rather than one of them silently winning. Each ``place`` is
    a table's name as written in the file, without brackets."""
    flat: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for place, table in parts:
        for key, value in table.items():
            if key in seen:
                raise ConfigError(f"{source}: {key} is given twice: in [{seen[key]}] and "
                                  f"[{place}]")
            seen[key] = place
            flat[key] = value
    return flat


def integer_key(table: dict, key: str, where: str, default: int, low: int, high: int) -> int:
    """``table[key]`` (``default`` when absent): an integer in [low, high]."""
    return checked_key(table, key, where, default, integer_in(low, high),
                       f"an integer in [{low}, {high}]")
