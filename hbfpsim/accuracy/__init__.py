"""Accuracy: how far a hardware GEMM result drifts from the exact product, and why.

``metrics``: relative Frobenius error, SQNR, max error, Wasserstein-1 distance and variance
retained, on all outputs or a seeded sample of rows x columns with bootstrap standard errors.
``hbfpsim.accuracy.vrr`` (import it by that name): the variance retention ratio of
floating-point accumulation in theory (from the premises of Sakr et al., ICLR 2019) and
measured with the MAC engine, and the fixed-point analogue for block accumulators
(worst-case width after A2Q, overflow probability). This layer knows no cycles.

>>> import numpy as np
>>> from hbfpsim.accuracy import metrics
>>> m = metrics(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
>>> round(m["rel_error"], 4), round(m["sqnr_db"], 2), m["max_abs_error"]
(0.1857, 14.62, 0.5)
"""

from hbfpsim.accuracy.metrics import (
                                      METRICS,
                                      Accuracy,
                                      Sample,
                                      choose,
                                      evaluate,
                                      exact_product,
                                      metrics,
)

__all__ = ["METRICS", "Accuracy", "Sample", "choose", "evaluate", "exact_product", "metrics"]
