"""Design-space sweeps: a spec of axes and constraints expands to runs, each keyed by a hash
of its resolved configuration; runs execute in batches on a local process pool or a Dask
cluster and land in a resumable SQLite store, from which ``export`` writes CSV or Parquet.
"""

from hbfpsim.sweep.spec import Run, SweepSpec, load, parse

__all__ = ["Run", "SweepSpec", "load", "parse"]
