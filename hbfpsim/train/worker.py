"""A training worker: ``python -m hbfpsim.train.worker``, one of ``job``'s pool
(``hbfpsim.children.Pool``).

Each request is one run (the ``TrainSpec``, a variant's index and a seed): it trains or
resumes it (``loop.train_one``), reporting the steps done as it goes (at most five times a
second), and answers with its ``RunResult``. The job starts it with one numba and one BLAS
thread (``children.ONE_THREAD``); ``loop.one_thread`` keeps torch to one as well.
"""

from __future__ import annotations

import time

from hbfpsim import children


class _Steps:
    """A progress bar's ``update`` that sends the steps done as progress frames."""

    def __init__(self, report) -> None:
        self.report, self.pending, self.sent = report, 0, time.monotonic()

    def update(self, steps: int) -> None:
        self.pending += steps
        if time.monotonic() - self.sent >= 0.2:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.report(self.pending)
        self.pending, self.sent = 0, time.monotonic()


def _run(request: tuple, report):
    from hbfpsim.train.job import make_task
    from hbfpsim.train.loop import one_thread, train_one
    spec, index, seed = request
    steps = _Steps(report)
    with one_thread():
        result = train_one(spec, make_task(spec), spec.variants[index], seed, spec.out, steps)
    steps.flush()
    return result


if __name__ == "__main__":
    children.bind_to_parent()
    children.serve(_run)
