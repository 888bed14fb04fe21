"""A local sweep worker: ``python -m hbfpsim.sweep.worker``, started by ``execute``.

It reads batches from its standard input (frames of ``hbfpsim.children``: the store's path,
the ``Job`` and a list of ``Task``), runs each and writes it into the store itself
(``store.run_and_store``), and answers with the runs stored, or the error that stopped the
batch. It exits at the end of its input (the sweep is over, or stopped between batches) and,
being a child of ``hbfpsim.children``, with the sweep's process whatever ends it. The sweep
starts it with one numba and one BLAS thread (``children.ONE_THREAD``): the workers share
the cores.
"""

from __future__ import annotations

import pickle
import sys

from hbfpsim import children


def serve() -> None:
    """Answer batches until the input ends."""
    from hbfpsim.sweep.store import run_and_store

    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr                 # nothing printed may enter the replies
    while True:
        try:
            store, job, tasks = children.receive(requests)
        except EOFError:
            return
        try:
            reply = ("done", run_and_store(store, job, tasks))
        except Exception as err:            # noqa: BLE001 (the sweep raises it)
            reply = ("error", err if _picklable(err) else RuntimeError(
                f"{type(err).__name__}: {err}"))
        children.send(replies, reply)


def _picklable(err: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:                       # noqa: BLE001 (any failure: send its text)
        return False
    return True


if __name__ == "__main__":
    children.bind_to_parent()
    serve()
