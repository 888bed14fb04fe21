"""A local sweep worker: ``python -m hbfpsim.sweep.worker``, one of ``driver``'s pool
(``hbfpsim.children.Pool``).

Each request is a batch (the store's path, the ``Job`` and a list of ``Task``): it runs the
batch and writes it into the store itself (``store.run_and_store``), answering with the runs
stored. The sweep starts it with one numba and one BLAS thread (``children.ONE_THREAD``):
the workers share the cores.
"""

from __future__ import annotations

from hbfpsim import children


def _batch(request: tuple, report) -> int:
    from hbfpsim.sweep.store import run_and_store
    store, job, tasks = request
    return run_and_store(store, job, tasks)


if __name__ == "__main__":
    children.bind_to_parent()
    children.serve(_batch)
