"""Constraint expressions over a sweep's keys, parsed safely (never ``eval``).

A constraint is one Python-like expression, such as ``rows * cols <= 65536`` or
``dataflow != "os" or rows == cols``. Python's own parser (``ast.parse`` in ``eval`` mode)
reads it; only the node types below are accepted, and evaluation walks the tree by hand:

- numbers, strings, ``true``/``false`` (``True``/``False``), and names of configuration keys;
- arithmetic ``+ - * / // % **`` on numbers (exponents at most 64, integers below
  2^4096) and unary ``-``;
- comparisons ``< <= > >= == !=`` (chained too) and ``in`` / ``not in`` a list;
- ``and``, ``or``, ``not``.

Anything else (calls, attributes, subscripts, lambdas, comprehensions) is refused when the
spec is read, with the constraint and what is not allowed.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Iterable, Mapping
from typing import Any

from hbfpsim.validate import ConfigError, is_real, is_text

MAX_LENGTH = 1000          # characters in one constraint
MAX_EXPONENT = 64
MAX_BITS = 4096            # integers stay small: no expression allocates without bound
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_CONSTANTS = {"true": True, "false": False}


class Constraint:
    """One parsed constraint; ``holds(values)`` evaluates it on a run's keys."""

    def __init__(self, text: str, names: Iterable[str], where: str) -> None:
        if not is_text(text) or len(text) > MAX_LENGTH:
            raise ConfigError(f"{where}: expected an expression of 1 to {MAX_LENGTH} "
                              f"characters, got {text!r:.80}")
        self.text, self.where, self.names = text, where, frozenset(names)
        try:
            self.tree = ast.parse(text.strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            raise ConfigError(f"{where}: {text!r} is not an expression: "
                              f"{getattr(err, 'msg', err)}") from None
        self._check(self.tree)

    def _check(self, node: ast.AST) -> None:
        kind = type(node)
        if kind is ast.Constant:
            if isinstance(node.value, (bool, int, float, str)):
                return
        elif kind is ast.Name:
            if node.id in self.names or node.id in _CONSTANTS:
                return
            raise ConfigError(f"{self.where}: {self.text!r}: unknown name {node.id!r} "
                              f"(expected a configuration key: "
                              f"{', '.join(sorted(self.names))})")
        elif kind is ast.BinOp and type(node.op) in _BINARY:
            return self._check_all(node.left, node.right)
        elif kind is ast.UnaryOp and type(node.op) in (ast.USub, ast.UAdd, ast.Not):
            return self._check(node.operand)
        elif kind is ast.BoolOp:
            return self._check_all(*node.values)
        elif kind is ast.Compare and all(type(op) in _COMPARE for op in node.ops):
            return self._check_all(node.left, *node.comparators)
        elif kind in (ast.List, ast.Tuple):
            return self._check_all(*node.elts)
        raise ConfigError(f"{self.where}: {self.text!r}: {_describe(node)} is not allowed "
                          "(numbers, strings, keys, arithmetic, comparisons, in, and/or/not)")

    def _check_all(self, *nodes: ast.AST) -> None:
        for node in nodes:
            self._check(node)

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether the constraint is true for these key values; an error (a division by
        zero, a string compared with a number) is a ConfigError naming the values."""
        try:
            return bool(self._value(self.tree, values))
        except (TypeError, ZeroDivisionError, OverflowError, ValueError) as err:
            shown = ", ".join(f"{k}={values[k]!r}" for k in sorted(self.names & set(values))
                              if k in self.text)
            raise ConfigError(f"{self.where}: {self.text!r} fails for {shown}: {err}") from None

    def _value(self, node: ast.AST, values: Mapping[str, Any]) -> Any:
        kind = type(node)
        if kind is ast.Constant:
            return node.value
        if kind is ast.Name:
            return _CONSTANTS[node.id] if node.id in _CONSTANTS and node.id not in values \
                else values[node.id]
        if kind is ast.BinOp:
            left, right = self._value(node.left, values), self._value(node.right, values)
            if not (is_real(left) and is_real(right)):
                raise TypeError(f"arithmetic takes numbers, got {left!r} and {right!r}")
            if type(node.op) is ast.Pow and abs(right) > MAX_EXPONENT:
                raise ValueError(f"an exponent must be at most {MAX_EXPONENT} in magnitude, "
                                 f"got {right!r}")
            result = _BINARY[type(node.op)](left, right)
            if isinstance(result, int) and result.bit_length() > MAX_BITS:
                raise OverflowError(f"an intermediate value passes 2^{MAX_BITS}")
            return result
        if kind is ast.UnaryOp:
            value = self._value(node.operand, values)
            return (not value if type(node.op) is ast.Not else
                    -value if type(node.op) is ast.USub else +value)
        if kind is ast.BoolOp:
            results = (self._value(v, values) for v in node.values)
            return all(results) if type(node.op) is ast.And else any(results)
        if kind is ast.Compare:
            left = self._value(node.left, values)
            for op, right_node in zip(node.ops, node.comparators):
                right = self._value(right_node, values)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        return [self._value(e, values) for e in node.elts]   # List, Tuple (checked above)


def _describe(node: ast.AST) -> str:
    names = {ast.Call: "a call", ast.Attribute: "an attribute", ast.Subscript: "indexing",
             ast.Lambda: "a lambda", ast.IfExp: "a conditional expression"}
    return names.get(type(node), f"{type(node).__name__}")
