"""A Dask ``LocalCluster`` in a child process: ``python -m hbfpsim.sweep.cluster WORKERS
FOLDER``.

``driver`` starts it for ``scheduler = "local"``: it starts the cluster (``WORKERS``
worker processes of one thread on the loopback interface, no dashboard), sends the
scheduler's address as one frame of ``hbfpsim.children`` and closes the cluster when its
standard input ends. Dask's local directory (its ``dask-scratch-space``: locks, worker
folders, spilled data) is inside ``FOLDER``, the sweep's temporary folder, which the sweep
removes when it ends; the sweep also sends this process's standard error (Dask's log lines,
its worker processes' included) into a file there. Dask starts its worker processes with
multiprocessing's spawn method, which re-imports the main module: here that is this module,
never the sweep's caller's.
"""

from __future__ import annotations

import sys

from hbfpsim import children


def serve(workers: int, folder: str) -> None:
    """Run the cluster until standard input ends. ``folder``: Dask's local directory."""
    import dask
    from distributed import LocalCluster

    dask.config.set({"temporary-directory": folder})    # the scheduler's, and the workers'
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None,
                      local_directory=folder) as cluster:
        children.send(sys.stdout.buffer, cluster.scheduler_address)
        sys.stdin.buffer.read()                 # until the sweep is over


if __name__ == "__main__":
    children.bind_to_parent()
    serve(int(sys.argv[1]), sys.argv[2])
