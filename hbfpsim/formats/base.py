"""What every number format offers: quantize, encode, decode and its storage cost.

A format rounds a tensor along one axis (the reduction axis of the GEMM that will consume
it: blocks of HBFP and MX run along it; INT8 per-channel scales are taken along it). The
shared flow lives here: input validation, moving the axis last and viewing the data as
C-contiguous rows, the non-finite policy, and restoring the caller's layout. Subclasses
only round rows and pack/unpack their integer fields.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from hbfpsim.formats import kernels
from hbfpsim.formats.rounding import Rounding
from hbfpsim.formats.threads import threads_for
from hbfpsim.validate import is_integer

NONFINITE_POLICIES = ("raise", "propagate")


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (docs/architecture.md: a ``TypeError`` saying what it
    must be). It is a ``ValueError`` too, as numpy's ``AxisError`` is both a ``ValueError``
    and an ``IndexError``: readers of run files and traces that turn a ValueError from these
    functions into a ConfigError or TraceError keep doing so."""


def type_name(value: Any) -> str:
    """What ``value`` is, for messages: its type (``int``, ``NoneType``, ``numpy.ndarray``),
    after its repr when that is short and on one line (``1.5 (float)``)."""
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    try:
        shown = repr(value)
    except Exception:                            # noqa: BLE001 - a repr that fails
        return name
    return f"{shown} ({name})" if len(shown) <= 40 and "\n" not in shown else name


_NARROW_FLOATS = {"float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float6_e3m2fn",
                  "float6_e2m3fn", "float4_e2m1fn"}     # numpy's and ml_dtypes' type names


def as_float_array(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as float32 (float32 and narrower float inputs, converted exactly) or float64
    (float64, integer and bool inputs); anything else (complex, strings, objects, dates) is
    an :class:`ArgumentTypeError` naming the argument ``name``."""
    a = np.asarray(x)
    if not a.dtype.isnative:                     # big-endian data: the same numbers
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype in (np.float32, np.float64):
        return a
    if a.dtype.name in _NARROW_FLOATS and a.dtype.kind in "fV":
        return a.astype(np.float32)
    if a.dtype.kind in "biu":
        return a.astype(np.float64)
    raise ArgumentTypeError(f"{name} must be a real numeric array (float, int or bool), got "
                            f"dtype {a.dtype}")


@dataclass(frozen=True)
class Layout:
    """How a tensor of ``shape`` maps to C-contiguous rows along its quantization axis:
    row ``r`` holds the elements along ``axis`` at the ``r``-th index (C order) of the other
    axes. A 0-d tensor is one row of one element."""

    shape: tuple[int, ...]
    axis: int

    @classmethod
    def of(cls, shape: tuple[int, ...], axis: Any) -> Layout:
        return cls(tuple(shape), normalize_axis(axis, max(len(shape), 1)))

    def rows(self, a: np.ndarray) -> np.ndarray:
        """An array of this layout (or with ``axis`` resized) as rows."""
        moved = np.moveaxis(a.reshape(1) if a.ndim == 0 else a, self.axis, -1)
        return np.ascontiguousarray(moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1]))

    def restore(self, rows: np.ndarray) -> np.ndarray:
        """Rows of any length n back to this layout, with ``axis`` of length n."""
        if not self.shape:
            return rows.reshape(())
        other = self.shape[:self.axis] + self.shape[self.axis + 1:]
        return np.moveaxis(rows.reshape(other + rows.shape[-1:]), -1, self.axis)


def normalize_axis(axis: Any, ndim: int) -> int:
    """``axis`` of an input with ``ndim`` dimensions, an integer in [-ndim, ndim), as an
    index in [0, ndim)."""
    if not is_integer(axis):
        raise ArgumentTypeError(f"axis must be an integer, got {type_name(axis)}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for an input with {ndim} dimension(s)")
    return int(axis) % ndim


def rounding_mode(rounding: Any, seed: Any) -> tuple[int, int]:
    """(kernel mode, seed) from the public ``rounding`` and ``seed`` arguments: a wrong
    type (``rounding`` not a Rounding or a string, ``seed`` not an integer or None) is an
    :class:`ArgumentTypeError`, a wrong value a ValueError."""
    mode = Rounding.parse(check_rounding_type(rounding, "rounding"))
    check_seed_type(seed, "seed")
    if mode != Rounding.STOCHASTIC:
        return int(mode), 0
    if seed is None:
        raise ValueError("rounding='stochastic' needs seed=<int>: the same seed gives the same bits")
    if not is_integer(seed, 0, 2**63 - 1):
        raise ValueError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    return int(mode), int(seed)


def check_rounding_type(rounding: Any, name: str) -> Any:
    """``rounding`` if it is a Rounding or a string (its value is checked by
    ``Rounding.parse``), else an :class:`ArgumentTypeError` naming ``name``."""
    if not isinstance(rounding, (Rounding, str)):
        raise ArgumentTypeError(f"{name} must be a Rounding or its name (a string such as "
                                f"'even'), got {type_name(rounding)}")
    return rounding


def check_seed_type(seed: Any, name: str) -> None:
    """An :class:`ArgumentTypeError` naming ``name`` unless ``seed`` is None or an integer
    (not a bool); its range is the caller's to check."""
    if seed is not None and not is_integer(seed):
        raise ArgumentTypeError(f"{name} must be an integer in [0, 2^63) or None, got "
                                f"{type_name(seed)}")


def check_nonfinite(nonfinite: Any) -> str:
    """The ``nonfinite`` policy: a string (else :class:`ArgumentTypeError`) among
    ``NONFINITE_POLICIES`` (else ValueError)."""
    if not isinstance(nonfinite, str):
        raise ArgumentTypeError(f"nonfinite must be a string, 'raise' or 'propagate', got "
                                f"{type_name(nonfinite)}")
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite={nonfinite!r} is not one of 'raise', 'propagate'")
    return nonfinite


@dataclass(frozen=True)
class Encoded:
    """The integer fields of a quantized tensor, as hardware stores them.

    ``sign`` (uint8, 1 = negative) and ``code`` (unsigned magnitude field) have the shape of
    the input. Shared fields keep the input's layout with ``axis`` shortened to one entry per
    block (``shared_exp``: uint8 E8M0 codes, unbiased exponent = code - 127, 255 = NaN) or
    per scale (``scale``: float32). What ``code`` means is the format's, see its
    ``decode`` and docs/formats.md.
    """

    format: Format
    axis: int
    sign: np.ndarray
    code: np.ndarray
    shared_exp: np.ndarray | None = None
    scale: np.ndarray | None = None

    def decode(self) -> np.ndarray:
        """The represented values, float64."""
        return self.format.decode(self)


class Format(ABC):
    """A number format. Concrete formats are frozen dataclasses made by ``formats.get``.

    Attributes: ``name`` (canonical), ``family`` (fp | int | hbfp | mx), ``element_bits``
    (bits per element, sign included), ``block`` (elements sharing one exponent or scale,
    None for scalar formats) and ``scale_bits`` (bits of that shared field).
    """

    name: str
    family: str
    element_bits: int
    block: int | None = None
    scale_bits: int = 0
    nonfinite_rule: str = ""  # what nonfinite='propagate' does; empty: not supported

    @property
    def storage_bits(self) -> float:
        """Bits per element in memory, shared exponents/scales amortized over their block."""
        return self.element_bits + (self.scale_bits / self.block if self.block else 0.0)

    @abstractmethod
    def describe(self) -> str:
        """One line: the element grid and the scale rule."""

    def options(self) -> dict[str, Any]:
        """The options (of ``formats.get``) this format was made with that differ from the
        defaults of its name."""
        return {}

    @property
    def canonical(self) -> str:
        """The name and its non-default options (``hbfp4@64:compat=hbfpemulator``): one
        string per distinct format, for keys and identities."""
        return self.name + "".join(f":{k}={v}" for k, v in sorted(self.options().items()))

    def quantize(self, x: Any, axis: int = -1, rounding: str | Rounding = "even",
                 seed: int | None = None, nonfinite: str = "raise") -> np.ndarray:
        """The values ``x`` takes in this format: same shape; float32 for float32 (and
        narrower float) input, float64 otherwise. Blocks and per-channel scales run along
        ``axis``. ``rounding``: a :class:`Rounding` or its name, even (= rne) | away (= rna) |
        rtz | stochastic (then ``seed`` is required). Values beyond the format's range
        follow its overflow rule in every mode.
        ``nonfinite='raise'`` rejects NaN/Inf input; 'propagate' applies the format's rule."""
        layout, q, side = self._run(x, axis, rounding, seed, nonfinite)
        return layout.restore(q)

    def quantize_rows(self, rows: np.ndarray, mode: int = 0, seed: int = 0) -> np.ndarray:
        """``quantize(rows, axis=1, rounding=Rounding(mode), seed=seed)`` without the checks:
        ``rows`` is a C-contiguous float32 or float64 (R, L) array, ``mode`` a
        :class:`Rounding` code, and NaN or Inf is not refused (a block holding one comes out
        as the format's kernel writes it). The entry for hot loops that call it thousands of
        times on small tensors (emulated training), where the checks cost more than the
        rounding."""
        return self._round(rows, mode, seed)[0]

    def encode(self, x: Any, axis: int = -1, rounding: str | Rounding = "even",
               seed: int | None = None, nonfinite: str = "raise") -> Encoded:
        """The integer fields of ``quantize(x, ...)`` (same arguments)."""
        layout, q, side = self._run(x, axis, rounding, seed, nonfinite)
        sign, code, shared_exp, scale = self._pack(q, side)
        return Encoded(self, layout.axis, layout.restore(sign), layout.restore(code),
                       None if shared_exp is None else layout.restore(shared_exp),
                       None if scale is None else layout.restore(scale))

    def decode(self, enc: Encoded) -> np.ndarray:
        """The values an :class:`Encoded` of this format represents, float64."""
        if enc.format != self:
            raise ValueError(f"cannot decode fields of {enc.format!r} as {self!r}")
        layout = Layout(enc.code.shape, enc.axis)
        shared = None if enc.shared_exp is None else layout.rows(enc.shared_exp)
        scale = None if enc.scale is None else layout.rows(enc.scale)
        return layout.restore(self._unpack(layout.rows(enc.sign), layout.rows(enc.code), shared,
                                           scale))

    def _run(self, x: Any, axis: int, rounding: str | Rounding, seed: int | None, nonfinite: str):
        a = as_float_array(x)
        mode, seed = rounding_mode(rounding, seed)
        check_nonfinite(nonfinite)
        if nonfinite == "propagate" and not self.nonfinite_rule:
            raise ValueError(f"{self.name} has no representation for NaN or Inf; "
                             "nonfinite='propagate' is not available")
        layout = Layout.of(a.shape, axis)
        q, side, bad = self._round(layout.rows(a), mode, seed)
        if nonfinite == "raise" and bad.any():
            n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            hint = f"; nonfinite='propagate' {self.nonfinite_rule}" if self.nonfinite_rule else ""
            raise ValueError(f"{self.name}: input has {n_nan} NaN and {n_inf} infinite "
                             f"value(s){hint}")
        return layout, q, side

    @abstractmethod
    def _round(self, x: np.ndarray, mode: int, seed: int) -> tuple[np.ndarray, Any, np.ndarray]:
        """Round rows ``x`` (R, L): returns (q rows in x's dtype, side data for packing,
        flags that are nonzero where the input held NaN or Inf)."""

    @abstractmethod
    def _pack(self, q: np.ndarray, side: Any) -> tuple:
        """Rows of q -> (sign, code, shared_exp or None, scale or None), all as rows."""

    @abstractmethod
    def _unpack(self, sign: np.ndarray, code: np.ndarray, shared_exp: np.ndarray | None,
                scale: np.ndarray | None) -> np.ndarray:
        """Rows of fields -> rows of float64 values."""


def shared_exp_codes(exps: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Unbiased block exponents -> uint8 E8M0 codes (bias 127; 255 marks NaN blocks)."""
    codes = np.where(bad, 255, exps.astype(np.int64) + 127)
    if codes.size and (codes.min() < 0 or codes.max() > 255):
        raise ValueError("a block exponent is outside the 8-bit range [-127, 127]")
    return codes.astype(np.uint8)


def scale_blocks(rows: np.ndarray, exps: np.ndarray, block: int,
                 magnitude: bool = False) -> np.ndarray:
    """float64 ``rows`` (R, L) (or their magnitudes) times 2^exps[r, b] for each element's
    block b: exact power-of-two scaling, in one pass."""
    out = np.empty(rows.shape, np.float64)
    with threads_for(rows.size):
        kernels.scale_blocks(rows, np.ascontiguousarray(exps, np.int64), block, magnitude,
                             out)
    return out


def sign_magnitude(sign: np.ndarray, code: np.ndarray) -> np.ndarray:
    """(-1)^sign * code as float64, keeping -0.0 for a negative zero."""
    values = code.astype(np.float64)
    np.negative(values, out=values, where=sign.astype(bool))
    return values


def expand_blocks(per_block: np.ndarray, block: int, length: int) -> np.ndarray:
    """(R, nblocks) -> (R, length): each block's entry repeated over its elements."""
    return np.repeat(per_block, block, axis=1)[:, :length]
