"""How much of a sum's variance a narrow accumulator keeps, and how wide it must be.

Floating-point accumulators (Sakr et al., "Accumulation Bit-Width Scaling for Ultra-Low
Precision Training of Deep Networks", ICLR 2019): the variance retention ratio
VRR = Var(computed sum) / Var(exact sum) of n i.i.d. zero-mean products summed in an
accumulator with ``m_acc`` fraction (mantissa) bits, sequentially or in chunks.

- :func:`vrr`, :func:`variance_lost` (n (1 - VRR), in units of one product's variance) and
  :func:`min_mantissa_bits` (the knee: the fewest bits losing at most ``max_lost``) evaluate
  this module's analytic model, derived in docs/vrr.md from the paper's premises: the partial
  sum of i products is Gaussian, and every addition rounds onto the grid of the accumulator's
  current binade. For round-to-nearest the model is a variance ODE in n / 4^m_acc; for
  round-toward-zero the truncation is a drift toward zero and VRR has a closed form.
- :func:`measured_vrr` measures VRR with the MAC engine (``hbfpsim.mac.matmul``), with its
  standard error.

Fixed-point (HBFP, MX) block accumulators:

- :func:`worst_case_width`: the data-type bound of A2Q (Colbert et al., "A2Q: Accumulator-
  Aware Quantization with Guaranteed Overflow Avoidance", ICCV 2023): the fewest two's
  complement bits no K-long dot product of sign-magnitude a- and b-bit integers overflows.
- :func:`overflow_probability` and :func:`min_fixed_width`: the probability that Gaussian
  data quantized to such integers overflows a narrower register, and the narrowest register
  meeting a target probability.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import integrate
from scipy.special import ndtr

from hbfpsim import formats
from hbfpsim.formats import Rounding
from hbfpsim.mac import matmul
from hbfpsim.validate import is_integer, is_number, is_real

LOST_CUTOFF = math.log(50)   # knee: v(n) = exp(n (1 - VRR)) <= 50 (Sakr et al.'s cut-off)
MODELLED = (Rounding.RNE, Rounding.RTZ)
MAX_MANTISSA = 52            # e{E}m{M} accumulators: 1 <= M <= 52
ELEMENTS_PER_CALL = 2**24    # operand elements per matmul call in measured_vrr (memory)
SIDE = 256                   # at most SIDE x SIDE sums per matmul call
TABLE_EXPS = np.arange(-4, 6)  # binade ulps 2^e, in product standard deviations, tabulated
SIEGMUND = 0.5826            # -zeta(1/2) / sqrt(2 pi): discrete-walk barrier correction


# ---- floating point: the analytic model -------------------------------------------------

def vrr(n: int, m_acc: int, *, chunk: int | None = None,
        rounding: str | Rounding = "rne") -> float:
    """Modelled variance retention ratio of summing ``n`` i.i.d. zero-mean products in a
    floating-point accumulator with ``m_acc`` fraction bits (the ``M`` of ``e{E}m{M}``;
    FP32 has 23): Var(computed sum) / Var(exact sum), dimensionless. ``chunk``: sum chunks
    of ``chunk`` consecutive products, then the n / chunk chunk sums, both in the same
    accumulator (``chunk`` must divide ``n``); None: one sequential sum. ``rounding``: the
    accumulator's rounding, ``"rne"`` or ``"rtz"`` (any spelling of
    :class:`hbfpsim.formats.Rounding`). The exponent range is taken as unbounded."""
    return 1.0 - variance_lost(n, m_acc, chunk=chunk, rounding=rounding) / n


def variance_lost(n: int, m_acc: int, *, chunk: int | None = None,
                  rounding: str | Rounding = "rne") -> float:
    """n (1 - VRR): the variance the accumulation loses, in units of one product's variance
    (Sakr et al.'s normalized variance lost; their v(n) is its exponential). Arguments as in
    :func:`vrr`. Negative when rounding noise adds more variance than swamping removes."""
    mode = _modelled(rounding)
    _check_length(n, "n")
    _check_mantissa(m_acc)
    if chunk is None:
        return _lost(n, m_acc, mode)
    _check_chunk(n, chunk)
    first, second = n // chunk * _lost(chunk, m_acc, mode), _lost(n // chunk, m_acc, mode)
    # VRR = VRR(chunk) VRR(n / chunk): the chunk sums are i.i.d. and the model scale-free
    return first + chunk * second - first * second / (n // chunk)


def min_mantissa_bits(n: int, *, chunk: int | None = None,
                      rounding: str | Rounding = "rne", max_lost: float = LOST_CUTOFF) -> int:
    """The fewest accumulator fraction bits (1..52) whose modelled :func:`variance_lost` is
    at most ``max_lost`` product variances: the knee of Sakr et al., whose cut-off
    v(n) = exp(n (1 - VRR)) <= 50 is the default ``max_lost = ln 50``. Raises ValueError if
    even 52 bits lose more."""
    if not (is_real(max_lost) and max_lost > 0):
        raise ValueError(f"max_lost={max_lost!r}: expected a positive number of product "
                         "variances")

    def meets(m_acc: int) -> bool:
        return variance_lost(n, m_acc, chunk=chunk, rounding=rounding) <= max_lost

    if not meets(MAX_MANTISSA):
        raise ValueError(f"no accumulator up to {MAX_MANTISSA} fraction bits loses at most "
                         f"{max_lost} product variances over n={n}")
    lo, hi = 0, MAX_MANTISSA           # the loss falls as bits grow: bisect, meets(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if meets(mid) else (mid, hi)
    return hi


def _lost(n: int, m_acc: int, mode: Rounding) -> float:
    """n (1 - VRR) of one sequential sum of n products."""
    if mode == Rounding.RTZ:
        # s_i = (1 - lam) s_(i-1) + p_i: Var(s_n) = sum_(k<n) a^k with a = (1 - lam)^2
        log_a = 2.0 * math.log1p(-_rtz_drift(m_acc))
        return n - math.expm1(n * log_a) / math.expm1(log_a)
    scale = 4.0**m_acc                 # x = Var(partial sum) / (4^m_acc Var(product))
    span = (n - 1) / scale             # the n - 1 additions after the first product

    def rate(t, lost):                 # lost so far, in product variances
        x = max((1.0 + scale * t - lost[0]) / scale, 1.0 / scale)  # x > 0 on trial steps
        return [-scale * _gain_excess(x)]

    if span == 0.0:
        return 0.0
    early = min(n * n / (64.0 * math.log(2.0) * scale), n)  # the small-n/4^m asymptote
    sol = integrate.solve_ivp(rate, (0.0, span), [0.0], method="LSODA", rtol=1e-8,
                              atol=1e-9 * early)
    return float(sol.y[0, -1])


def _rtz_drift(m_acc: int) -> float:
    """lam: truncation removes half an ulp per addition on average, toward zero, and
    ulp / |s| averages 2^-m_acc / (2 ln 2) over a binade (Benford-distributed |s|)."""
    return 2.0**-m_acc / (4.0 * math.log(2.0))


def _gain_excess(x: float) -> float:
    """d Var(partial sum) / d(additions) - 1, in product variances, when the partial sum is
    N(0, 4^m x): E[Delta^2] + 2 E[s Delta] - 1 for the increment Delta of one RNE addition."""
    sd = math.sqrt(x)
    top = max(int(TABLE_EXPS[-1]), math.floor(math.log2(sd)) + 12)
    exps = np.arange(min(int(TABLE_EXPS[0]), math.floor(math.log2(sd)) - 30), top + 1)
    ulp = np.exp2(exps.astype(float))
    gain, bias = _rne_steps(exps, ulp)
    in_binade = 2.0 * (ndtr(-ulp / sd) - ndtr(-2.0 * ulp / sd))
    density = np.exp(-0.5 * (ulp / sd) ** 2) / (math.sqrt(2.0 * math.pi) * sd)
    above = 2.0 * ndtr(-2.0 * ulp[-1] / sd)   # beyond the last binade: fully swamped
    return (float(np.sum(in_binade * gain)) - above
            + 4.0 * float(np.sum(ulp * density * bias)))


def _rne_steps(exps: np.ndarray, ulp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per binade of ulp u (product std units): g(u) - 1 = E[round_u(p)^2] - 1 and the edge
    bias beta(u); tabulated exactly for TABLE_EXPS, their asymptotes outside."""
    table_gain, table_bias = _rne_table()
    i = np.clip(exps - TABLE_EXPS[0], 0, len(TABLE_EXPS) - 1)
    below, above = exps < TABLE_EXPS[0], exps > TABLE_EXPS[-1]
    gain = np.where(below, ulp**2 / 12.0, np.where(above, -1.0, table_gain[i]))
    bias = np.where(below, -ulp**2 / 32.0, np.where(above, 0.0, table_bias[i]))
    return gain, bias


@lru_cache(maxsize=1)
def _rne_table() -> tuple[np.ndarray, np.ndarray]:
    ulps = np.exp2(TABLE_EXPS.astype(float))
    return (np.array([_second_moment(u) - 1.0 for u in ulps]),
            np.array([_edge_bias(u) for u in ulps]))


def _second_moment(u: float) -> float:
    """g(u) = E[(u round(p / u))^2] for p ~ N(0, 1), round to nearest:
    2 u^2 sum_(k>=1) (2k - 1) Q((k - 1/2) u)."""
    k = np.arange(1, int(40.0 / u) + 2)
    return float(2.0 * u * u * np.sum((2 * k - 1) * ndtr(-(k - 0.5) * u)))


def _edge_bias(u: float) -> float:
    """beta(u): the sum over the grid points s near a binade edge of (spacing at s) x
    E[round(s + p) - s], p ~ N(0, 1), where the grid has spacing u above the edge and u/2
    below it (units: product std squared). Far from an edge the sum's terms vanish."""
    reach = 12.0                       # grid points within 12 std of the edge
    up = np.arange(0.0, 2.0 * reach + u, u)
    down = -np.arange(u / 2.0, 2.0 * reach + u, u / 2.0)[::-1]
    grid = np.concatenate([down, up])
    cells = (grid[1:] + grid[:-1]) / 2.0
    start = np.concatenate([down[down > -reach], up[up < reach]])
    spacing = np.where(start < 0.0, u / 2.0, u)
    cdf = ndtr(cells[None, :] - start[:, None])
    prob = np.diff(np.concatenate([np.zeros((len(start), 1)), cdf,
                                   np.ones((len(start), 1))], axis=1), axis=1)
    return float(np.sum(spacing * (prob @ grid - start)))


# ---- floating point: the Monte Carlo --------------------------------------------------

def measured_vrr(n: int, m_acc: int, *, chunk: int | None = None,
                 rounding: str | Rounding = "rne", trials: int = 4096, seed: int = 0,
                 exp_bits: int = 8, products: str = "fp32") -> tuple[float, float]:
    """VRR measured with ``hbfpsim.mac.matmul``: (estimate, standard error).

    At least ``trials`` sums of ``n`` products each (rounded up to whole rows) run through
    the accumulator ``e{exp_bits}m{m_acc}:{rounding}`` (any rounding the engine accepts,
    stochastic included), sequentially or, with ``chunk`` (dividing ``n``), as the plan
    ``acc*chunk > acc``. The products are standard Gaussians rounded to the format
    ``products`` (default FP32: 23 fraction bits) times random signs: A holds the Gaussians,
    B the signs, so every product is exact and every computed sum is a sum of i.i.d.
    products. The exact sums are A @ B in float64. The sums have mean zero by symmetry, so
    VRR = sum(computed^2) / sum(exact^2), and its standard error is the delta-method (ratio
    estimator) one over the sums as independent pairs. (The sums of one row of A share
    their products' magnitudes; the correlation this leaves between their squares is
    O(1 / n), and per-sum, per-row-cluster and replicate spreads agree: docs/vrr.md.)
    ``seed`` fixes the data and any stochastic rounding."""
    _check_length(n, "n")
    _check_mantissa(m_acc)
    if chunk is not None:
        _check_chunk(n, chunk)
    if not is_integer(trials, 2):
        raise ValueError(f"trials={trials!r}: expected an integer >= 2")
    if not is_integer(exp_bits, 2, 11):
        raise ValueError(f"exp_bits={exp_bits!r}: expected an integer in 2..11 (e{{E}}m{{M}} "
                         "accumulators)")
    acc = f"e{exp_bits}m{m_acc}:{Rounding.parse(rounding).label}"
    plan = acc if chunk is None else f"{acc}*{chunk} > {acc}"
    fmt = formats.resolve(products)
    side = max(1, min(SIDE, ELEMENTS_PER_CALL // n))
    cols = min(side, math.isqrt(trials))      # square calls: least quantization work
    rows_left = -(-trials // cols)
    rng = np.random.default_rng(seed)
    computed, exact = [], []
    while rows_left:
        rows = min(rows_left, side)
        a = fmt.quantize(rng.standard_normal((rows, n)), axis=1)
        b = rng.choice(np.array([-1.0, 1.0]), size=(n, cols))
        out, _ = matmul(a, b, fmt, plan=plan, seed=int(rng.integers(2**63)))
        computed.append(out.ravel() ** 2)
        exact.append((a @ b).ravel() ** 2)
        rows_left -= rows
    return _ratio(np.concatenate(computed), np.concatenate(exact))


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """sum(num) / sum(den) over independent pairs, and its delta-method standard error."""
    ratio = float(num.sum() / den.sum())
    k = len(num)
    resid = num - ratio * den
    return ratio, float(np.sqrt(np.sum(resid**2) / (k * (k - 1))) / den.mean())


# ---- fixed point ------------------------------------------------------------------------

def worst_case_width(a_bits: int, b_bits: int, k: int) -> int:
    """Bits of the narrowest two's complement register that no ``k``-long dot product of
    sign-magnitude ``a_bits``- by ``b_bits``-bit integers (sign included: magnitudes up to
    2^(a-1) - 1) can overflow, partial sums included: a + b - 1 + ceil(log2 k) (A2Q's
    data-type bound). It is sufficient for every k and exact when k is a power of two and
    a, b >= 3; otherwise fewer bits may suffice."""
    for name, bits in (("a_bits", a_bits), ("b_bits", b_bits)):
        if not is_integer(bits, 2):
            raise ValueError(f"{name}={bits!r}: expected an integer >= 2 (sign included)")
    _check_length(k, "k")
    return a_bits + b_bits - 1 + (k - 1).bit_length()


def overflow_probability(width: int, a_bits: int, b_bits: int, k: int, *,
                         block: int = 64) -> float:
    """Probability that a ``k``-long dot product overflows a ``width``-bit two's complement
    accumulator at some partial sum (a saturating ``fixed{w}`` register then clamps and
    counts an overflow), under this model (docs/vrr.md):

    - both operands are i.i.d. Gaussians whose scale is unrelated to powers of two,
      quantized in blocks of ``block`` elements to sign-magnitude integers of ``a_bits`` /
      ``b_bits`` bits (sign included) with one power-of-two scale per block chosen so the
      block's largest magnitude has its leading one in the top magnitude bit (HBFP; MXINT8
      at 8 bits); the k products lie in one block of each operand (k <= block);
    - given the two blocks' scales the k integer products are i.i.d. with zero mean and
      their partial sums a Gaussian random walk; the probability that its largest magnitude
      reaches 2^(width - 1) is the Brownian one with Siegmund's correction for a discrete
      walk (the barrier moves out by 0.5826 step standard deviations).

    0 from :func:`worst_case_width` bits up."""
    if not is_integer(width, 2):
        raise ValueError(f"width={width!r}: expected an integer >= 2 bits")
    widest = worst_case_width(a_bits, b_bits, k)
    if not is_integer(block, k):
        raise ValueError(f"block={block!r}: expected an integer >= k={k} (a fixed-point "
                         "sum stays inside one block of each operand)")
    if width >= widest:
        return 0.0
    weight, unit = _block_scales(block)
    step = np.sqrt(np.outer(unit * 4.0 ** (a_bits - 1) + 1.0 / 12.0,
                            unit * 4.0 ** (b_bits - 1) + 1.0 / 12.0))  # std of a product
    barrier = 2.0 ** (width - 1) + SIEGMUND * step
    return float(np.sum(np.outer(weight, weight)
                        * _exit_probability(barrier / (step * math.sqrt(k)))))


def min_fixed_width(k: int, a_bits: int, b_bits: int, *, probability: float = 1e-6,
                    block: int = 64) -> int:
    """The narrowest accumulator (bits) whose :func:`overflow_probability` for a ``k``-long
    dot product is at most ``probability``, in (0, 1). Never more than
    :func:`worst_case_width`, which is the width for a guarantee."""
    if not (is_number(probability) and 0.0 < probability < 1.0):
        raise ValueError(f"probability={probability!r}: expected a number in (0, 1)")
    widest = worst_case_width(a_bits, b_bits, k)
    return next(w for w in range(2, widest + 1)
                if overflow_probability(w, a_bits, b_bits, k, block=block) <= probability)


@lru_cache(maxsize=32)
def _block_scales(block: int) -> tuple[np.ndarray, np.ndarray]:
    """The scales a block of ``block`` N(0, sigma^2) elements can get, with log2(sigma)
    uniform in [0, 1) (16 points): (probability, mean square of the block's elements in
    units of their LSB, divided by 4^(bits - 1) and before rounding) per case. The block
    max M sets E = floor(log2 M) + 1 and x becomes round(x 2^(bits - 1 - E)); given E, the
    elements are M and block - 1 Gaussians below M. Rounding adds 1/12 (Sheppard)."""
    weights, units = [], []
    for offset in (np.arange(16) + 0.5) / 16:
        sigma = 2.0**offset
        for e in range(-40, 8):        # M in [2^(e-1), 2^e): M / sigma up to 2^7
            mass, mean_square = _max_in(2.0 ** (e - 1) / sigma, 2.0**e / sigma, block)
            if mass > 1e-15:
                weights.append(mass / 16)
                units.append(mean_square * (sigma * 2.0**-e) ** 2)
    return np.array(weights), np.array(units)


def _max_in(lo: float, hi: float, block: int) -> tuple[float, float]:
    """For ``block`` i.i.d. N(0, 1): P(lo <= max|x| < hi) and the elements' mean square
    given that event."""
    def density(m):                    # of max|x| = m
        inside = 1.0 - 2.0 * ndtr(-m)
        return block * 2.0 * math.exp(-0.5 * m * m) / math.sqrt(2.0 * math.pi) * inside ** (
            block - 1)

    def mean_square(m):                # (m^2 + (block - 1) E[x^2 | |x| < m]) / block
        inside = 1.0 - 2.0 * ndtr(-m)
        below = (inside - 2.0 * m * math.exp(-0.5 * m * m) / math.sqrt(2.0 * math.pi)) / inside
        return (m * m + (block - 1) * below) / block

    mass = integrate.quad(density, lo, hi)[0]
    if mass <= 0.0:
        return 0.0, 0.0
    return mass, integrate.quad(lambda m: density(m) * mean_square(m), lo, hi)[0] / mass


def _exit_probability(a: np.ndarray) -> np.ndarray:
    """P(max_(t<=1) |W_t| >= a) for standard Brownian motion W: the image series
    4 sum_(j>=1) (-1)^(j+1) Q((2j - 1) a) for a >= 1, else 1 minus the theta series
    (4/pi) sum_(j>=0) (-1)^j / (2j + 1) exp(-(2j + 1)^2 pi^2 / (8 a^2))."""
    a = np.asarray(a, float)
    j = np.arange(1, 40)[:, None]
    images = 4.0 * np.sum((-1.0) ** (j + 1) * ndtr(-(2 * j - 1) * a.reshape(1, -1)), axis=0)
    odd = (2 * np.arange(40) + 1)[:, None]
    small = np.maximum(a.reshape(1, -1), 1e-3)
    stay = 4.0 / math.pi * np.sum((-1.0) ** ((odd - 1) // 2) / odd
                                  * np.exp(-odd**2 * math.pi**2 / (8.0 * small**2)), axis=0)
    return np.where(a.reshape(-1) >= 1.0, images, 1.0 - stay).reshape(a.shape)


# ---- argument checks --------------------------------------------------------------------

def _check_length(n, name: str) -> None:
    if not is_integer(n, 1):
        raise ValueError(f"{name}={n!r}: expected an integer number of products >= 1")


def _check_mantissa(m_acc) -> None:
    if not is_integer(m_acc, 1, MAX_MANTISSA):
        raise ValueError(f"m_acc={m_acc!r}: expected an integer number of accumulator "
                         f"fraction bits in 1..{MAX_MANTISSA}")


def _check_chunk(n: int, chunk) -> None:
    if not (is_integer(chunk, 1, n) and n % chunk == 0):
        raise ValueError(f"chunk={chunk!r}: expected an integer in 1..n={n} that divides n")


def _modelled(rounding) -> Rounding:
    mode = Rounding.parse(rounding)
    if mode not in MODELLED:
        raise ValueError(f"rounding={rounding!r}: the model covers "
                         f"{', '.join(m.label for m in MODELLED)} accumulators; measure "
                         "others with measured_vrr")
    return mode
