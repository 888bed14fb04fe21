"""Replay: captured training traces on arrays, with time, energy, density and accuracy.

A run file (``hbfpsim.replay.runfile``) names traces, arrays and numerics variants (fixed
numerics or format schedules); ``run`` replays every record of every trace on every array
under every variant, one record at a time, and returns a ``Report`` (a ``Row`` per record,
``summary()`` per phase); ``write`` puts ``gemms.csv``, ``summary.csv``, ``run.json`` and the
figures in an output folder, atomically. ``hbfpsim run RUN.toml`` does both.
"""

from hbfpsim.replay.output import write
from hbfpsim.replay.record import COLUMNS, Costing, Row, replay
from hbfpsim.replay.run import Report, run, trace_context
from hbfpsim.replay.runfile import RunSpec, Sampling, load

__all__ = ["COLUMNS", "Costing", "Report", "Row", "RunSpec", "Sampling", "load", "replay",
           "run", "trace_context", "write"]
