"""A Dask ``LocalCluster`` in a child process: ``python -m hbfpsim.sweep.cluster WORKERS``.

``driver`` starts it for ``scheduler = "local"``: it starts the cluster (``WORKERS``
worker processes of one thread on the loopback interface, no dashboard), sends the
scheduler's address as one frame of ``hbfpsim.children`` and closes the cluster when its
standard input ends. Dask starts its worker processes with multiprocessing's spawn method,
which re-imports the main module: here that is this module, never the sweep's caller's.
"""

from __future__ import annotations

import sys

from hbfpsim import children


def serve(workers: int) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster:
        children.send(sys.stdout.buffer, cluster.scheduler_address)
        sys.stdin.buffer.read()                 # until the sweep is over


if __name__ == "__main__":
    children.bind_to_parent()
    serve(int(sys.argv[1]))
