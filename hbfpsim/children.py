"""Helper processes: ``python -m`` of a module of hbfpsim's own, bound to the life of the
process that started it.

``multiprocessing``'s spawn and forkserver start methods re-import the caller's main module
in every child (a script without an ``if __name__ == "__main__":`` guard then runs twice),
and its children outlive a parent killed by SIGKILL. A child started here runs ``python -m
MODULE`` instead, so nothing of the caller's is imported, with hbfpsim's own location first
on its path and the working folder not on it (``-P``): the same hbfpsim as the parent's,
even run from a source checkout beside an installed copy. Its module calls ``bind_to_parent()``
first: on Linux the kernel then sends it SIGKILL when the parent dies (``PR_SET_PDEATHSIG``;
strictly, when the parent's thread that started it ends), elsewhere a thread polls the
parent's pid twice a second. It ignores Ctrl-C, which reaches the whole process group and is
the parent's to handle; it starts with SIGINT blocked, so a Ctrl-C during its imports is
not taken either.

Messages between the two travel over the child's standard input and output as frames: an
8-byte length, then a pickle. Only a process of hbfpsim's own, started here, is read this
way; files are never unpickled. ``Pool`` hands requests to several such children and
``serve`` answers them in a child: each request gets any number of ``("progress", x)``
frames, then ``("done", result)`` or ``("error", exception)``.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
    with _ctrl_c_held():
        return subprocess.Popen([sys.executable, "-P", "-m", module, *args], env=environment,
                                **popen)       # -P: not the working folder's hbfpsim, if any


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """SIGINT blocked in this thread while a child starts: the child inherits the blocked
    signal across exec, so a Ctrl-C to the process group while it is still importing (before
    ``bind_to_parent`` ignores it) neither kills it nor prints a traceback. This process
    receives a Ctrl-C that arrived meanwhile once the child has started."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(_LENGTH.pack(len(payload)) + payload)
    while data:
        written = stream.write(data)      # an unbuffered pipe may take less
        data = data[written if written is not None else len(data):]
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """The next frame from ``stream``; EOFError when the other side has closed it (or died)
    before a whole frame."""
    head = _read(stream, _LENGTH.size)
    return pickle.loads(_read(stream, _LENGTH.unpack(head)[0]))


def _read(stream: IO[bytes], size: int) -> bytes:
    parts, left = [], size
    while left:
        data = stream.read(left)       # an unbuffered pipe may return less
        if not data:
            raise EOFError("the other process closed the pipe")
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def stop(child: subprocess.Popen, timeout: float = 60.0) -> None:
    """Close ``child``'s standard input (its cue to finish), wait for it (its last reply
    still fits the pipe) and close its output; kill it after ``timeout`` seconds."""
    _end_input(child)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    if child.stdout is not None:
        child.stdout.close()


def _end_input(child: subprocess.Popen) -> None:
    """Close ``child``'s standard input, if it has one open."""
    if child.stdin is not None:
        try:
            child.stdin.close()
        except OSError:
            pass


class ChildLost(OSError):
    """A child process died (killed, out of memory) before answering."""


class Pool:
    """``size`` children running ``python -m module``, each answering one request at a time
    (their module calls ``serve``). Use as a context manager; leaving it stops them
    (``close``). Their pipes are unbuffered: a buffered reader could hold frames that
    ``select`` then does not report as waiting."""

    def __init__(self, module: str, size: int, env: dict[str, str] | None = None) -> None:
        self.children: list[subprocess.Popen] = []
        try:
            for _ in range(size):
                self.children.append(start(module, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, env=env, bufsize=0))
        except BaseException:
            self.close(graceful=False)
            raise

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, kind, error, tb) -> None:
        self.close(graceful=kind is None)

    def run(self, requests: Iterable, stop: Callable[[], bool] = lambda: False
            ) -> Iterator[tuple[Any, str, Any]]:
        """(request, kind, value) for every frame the children send, "done" last for each
        request; the next request goes to the child that answered. Once ``stop()`` is true
        no request is handed out and the loop ends (running ones are left to ``close``). A
        child's error is raised here; a dead child raises ChildLost."""
        waiting = iter(requests)
        asked: dict[int, Any] = {}
        with selectors.DefaultSelector() as selector:
            for child in self.children:
                if not self._hand(child, waiting, asked, selector):
                    break
            while selector.get_map() and not stop():
                for key, _ in selector.select(timeout=0.2):
                    child = key.data
                    try:
                        kind, value = receive(child.stdout)
                    except EOFError:
                        raise ChildLost(f"a worker process (python -m {child.args[2]}) "
                                        "died") from None
                    if kind == "error":
                        raise value
                    yield asked[child.pid], kind, value
                    if kind == "done":
                        selector.unregister(child.stdout)
                        if not stop():
                            self._hand(child, waiting, asked, selector)

    @staticmethod
    def _hand(child: subprocess.Popen, waiting: Iterator, asked: dict,
              selector: selectors.BaseSelector) -> bool:
        request = next(waiting, _END)
        if request is _END:
            return False
        asked[child.pid] = request
        try:
            send(child.stdin, request)
        except OSError:                      # it died: its missing answer says so
            pass
        selector.register(child.stdout, selectors.EVENT_READ, child)
        return True

    def close(self, graceful: bool = True) -> None:
        """Stop every child: ``graceful`` lets each finish its request (``stop``), else
        they are killed at once. All are told first, then waited for: they end together."""
        for child in self.children:
            if not graceful:
                child.kill()
            _end_input(child)
        for child in self.children:
            stop(child)


_END = object()


def serve(handle: Callable[[Any, Callable[[Any], None]], Any]) -> None:
    """In a child of ``Pool``: answer requests from standard input until it ends.
    ``handle(request, report)`` computes the answer; ``report(x)`` sends a progress frame.
    Whatever the handler prints goes to standard error, never into the answers."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    while True:
        try:
            request = receive(requests)
        except EOFError:
            return
        try:
            reply = ("done", handle(request, lambda x: send(replies, ("progress", x))))
        except Exception as err:            # noqa: BLE001 (the parent raises it)
            reply = ("error", err if _picklable(err) else RuntimeError(
                f"{type(err).__name__}: {err}"))
        send(replies, reply)


def _picklable(err: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:                       # noqa: BLE001 (any failure: send its text)
        return False
    return True
