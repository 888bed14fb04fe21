"""Helper processes: ``python -m`` of a module of hbfpsim's own, bound to the life of the
process that started it.

``multiprocessing``'s spawn and forkserver start methods re-import the caller's main module
in every child (a script without an ``if __name__ == "__main__":`` guard then runs twice),
and its children outlive a parent killed by SIGKILL. A child started here runs ``python -m
MODULE`` instead, so nothing of the caller's is imported, with hbfpsim's own location first
on its path (the same hbfpsim as the parent's). Its module calls ``bind_to_parent()``
first: on Linux the kernel then sends it SIGKILL when the parent dies (``PR_SET_PDEATHSIG``;
strictly, when the parent's thread that started it ends), elsewhere a thread polls the
parent's pid twice a second. It ignores Ctrl-C, which reaches the whole process group and is
the parent's to handle.

Messages between the two travel over the child's standard input and output as frames: an
8-byte length, then a pickle. Only a process of hbfpsim's own, started here, is read this
way; files are never unpickled.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

PARENT = "HBFPSIM_PARENT_PID"       # the environment variable a child checks its parent by
ONE_THREAD = {name: "1" for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
_PR_SET_PDEATHSIG = 1
_LENGTH = struct.Struct("<Q")


def start(module: str, *args: str, env: dict[str, str] | None = None,
          **popen: Any) -> subprocess.Popen:
    """``python -m module *args`` as a child of this process (``popen``: Popen's stream
    arguments). ``env`` adds to this process's environment."""
    root = str(Path(__file__).resolve().parent.parent)       # where this hbfpsim lives
    path = os.environ.get("PYTHONPATH")
    environment = {**os.environ, **(env or {}), PARENT: str(os.getpid()),
                   "PYTHONPATH": root if not path else os.pathsep.join([root, path])}
    return subprocess.Popen([sys.executable, "-m", module, *args], env=environment, **popen)


def bind_to_parent() -> None:
    """In a child started by ``start``: exit when the parent dies, ignore Ctrl-C. Does
    nothing in a process started otherwise."""
    parent = int(os.environ.pop(PARENT, "0") or 0)
    if not parent:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    bound = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            bound = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            bound = False
    if os.getppid() != parent:          # the parent died before the binding took hold
        os._exit(1)
    if not bound:
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def send(stream: IO[bytes], message: Any) -> None:
    """One frame onto ``stream``, flushed."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """The next frame from ``stream``; EOFError when the other side has closed it (or died)
    before a whole frame."""
    head = _read(stream, _LENGTH.size)
    return pickle.loads(_read(stream, _LENGTH.unpack(head)[0]))


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) < size:
        raise EOFError("the other process closed the pipe")
    return data


def stop(child: subprocess.Popen, timeout: float = 60.0) -> None:
    """Close ``child``'s standard input (its cue to finish), wait for it (its last reply
    still fits the pipe) and close its output; kill it after ``timeout`` seconds."""
    if child.stdin is not None:
        try:
            child.stdin.close()
        except OSError:
            pass
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    if child.stdout is not None:
        child.stdout.close()
