"""Hostile inputs: a re-runnable catalogue of wrong and extreme inputs to the ``hbfpsim``
command line and its public API, each run and classified automatically.

    python tests/hostile.py [--jobs 2] [--filter SUBSTR] [--list] [--json FILE]

Every case runs in a subprocess in a fresh temporary folder ``ROOT/work`` (its working
directory), which the case's ``setup`` fills first; ``ROOT/outside`` is a folder "outside"
the working one, for symbolic links and outputs that point elsewhere. Command-line cases run
``python -m hbfpsim ARGV``; API cases run a small ``python -c`` runner that imports this file
by path and calls the case by name, so that a hang can be killed (the whole process group).

Outcomes (the first that applies, in this order):

``hang``       no answer within the case's timeout.
``traceback``  a Python traceback on stderr, an exception of an unexpected type (API), or a
               crash (killed by a signal).
``silent``     silent wrong: a wrong input accepted (exit status 0, or a value returned), or a
               legal input whose check failed (a wrong result, or a refusal).
``debris``     the case failed but left something behind in ROOT that setup did not make (or
               removed or changed what setup made); any case, failed or not, that left a hidden
               ``.NAME.tmp-PID`` / ``.NAME.old-PID`` sibling.
``messy``      refused, but not in the documented form: argparse's usage error (two lines,
               "hbfpsim CMD: error:"), another exit status, output on stdout, several stderr
               lines, an empty or multi-line message; or a legal input answered right but
               with raw Python warnings.
``clean``      a wrong input refused as documented: exit status 2, nothing on stdout, stderr
               exactly one line starting "hbfpsim: error:" (signals: 130 for SIGINT, 143 for
               SIGTERM, one line); API: a ValueError or OSError (subclasses included: the
               ConfigError and TraceError of hbfpsim) with a one-line message, or a
               TypeError whose message says what the argument "must be" or what was
               "expected" (docs/architecture.md: the answer to a wrong type). Or a legal but
               extreme input whose check passed (for some, a clean refusal is accepted too:
               ``refusal_ok``).

The catalogue (``cases()``) is built by command: for every command and argument, hostile
values (empty, negative, zero, NaN, infinities, 1e400, 2^63, 31 digits, words, missing paths,
folders, FIFOs, links, empty / binary / non-UTF-8 files, very long strings); for every key of
an array configuration, a run file and a trace manifest, type-confused and out-of-range
values; and API calls with bad shapes, dtypes, format names, plans and seeds.
tests/test_hostile.py runs it under pytest (``-m slow``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import reprlib
import resource
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TRACES = REPO / "traces"
QUICKSTART = REPO / "configs" / "quickstart.toml"
MARKER = "@@hostile-result@@"
OUTCOMES = ("clean", "traceback", "hang", "silent", "debris", "messy")
MISSING = None                      # a key left out of a file (see config_text & co.)
TEMP_SIBLING = re.compile(r"^\..*\.(tmp|old)-\d+")
RUNNER = ("import importlib.util, sys\n"
          "spec = importlib.util.spec_from_file_location('hostile_catalogue', sys.argv[1])\n"
          "module = importlib.util.module_from_spec(spec)\n"
          "sys.modules[spec.name] = module\n"
          "spec.loader.exec_module(module)\n"
          "raise SystemExit(module.api_child(sys.argv[2]))\n")


# =============================================================================================
# Cases, results, outcomes
# =============================================================================================

@dataclass(frozen=True)
class Case:
    """One hostile input. ``kind`` "cli": ``argv`` after ``hbfpsim``; "api": ``call(work)``
    returns a value or raises. ``setup(work)`` writes the files the case needs. ``expect``:
    "error" (the input is wrong: it must be refused) or a check, ``check(Result)`` for the
    command line and ``check(value)`` for the API, true when the answer is right.
    ``refusal_ok``: for a check case, a clean refusal is acceptable too. ``errors``: exception
    types (by name, subclasses included) an API case may raise. ``signal``: (signal number,
    seconds): send it to the running command, which must stop with status 128 + signal."""

    name: str
    kind: str
    group: str
    argv: tuple[str, ...] = ()
    call: Callable[[Path], Any] | None = None
    setup: Callable[[Path], None] | None = None
    expect: str | Callable[[Any], bool] = "error"
    timeout: float = 60.0
    refusal_ok: bool = False
    errors: tuple[str, ...] = ("ValueError", "OSError")
    signal: tuple[int, float] | None = None
    desc: str = ""

    def describe(self) -> str:
        """The command line or the call, for reports (long arguments shortened)."""
        if self.kind == "cli":
            return "hbfpsim " + " ".join(shlex.quote(short(a, 60)) for a in self.argv)
        return self.desc or self.name


@dataclass(frozen=True)
class Result:
    """What a command printed: exit status, stdout, stderr, and its working folder."""

    rc: int
    out: str
    err: str
    dir: Path


@dataclass(frozen=True)
class Outcome:
    name: str
    group: str
    outcome: str
    detail: str
    call: str
    seconds: float
    notes: tuple[str, ...] = ()


def short(text: str, limit: int = 40) -> str:
    """``text`` shown safely: non-printable and non-ASCII characters escaped, long ones cut."""
    shown = ascii(text)[1:-1] if isinstance(text, str) else repr(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit - 16]}...({len(text)} chars)"


def cli(group: str, what: str, argv: Iterable[str], setup=None, expect="error", **kw) -> Case:
    return Case(f"{group}/{what}", "cli", group, tuple(argv), setup=setup, expect=expect, **kw)


def api(group: str, what: str, call, desc: str, setup=None, expect="error", **kw) -> Case:
    return Case(f"api/{group}/{what}", "api", f"api {group}", call=call, setup=setup,
                expect=expect, desc=desc, **kw)


# =============================================================================================
# Running and classifying one case
# =============================================================================================

def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): type, and size and mtime for files."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            kind = stat.S_IFMT(st.st_mode)
            entries[os.path.relpath(path, root)] = ((kind, st.st_size, st.st_mtime_ns)
                                                    if stat.S_ISREG(st.st_mode) else (kind,))
    return entries


def _spawn(cmd: list[str], cwd: Path, timeout: float, sig: tuple[int, float] | None
           ) -> tuple[int | None, str, str, bool]:
    """(exit status or None on timeout, stdout, stderr, finished before the signal)."""
    env = {**os.environ, "LC_ALL": "C.UTF-8", "PYTHONFAULTHANDLER": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    early = False
    try:
        if sig is not None:
            signum, delay = sig
            try:
                out, err = proc.communicate(timeout=delay)
                early = True
            except subprocess.TimeoutExpired:
                if signum == signal.SIGINT:          # Ctrl-C reaches the whole foreground group
                    os.killpg(proc.pid, signum)
                else:                                # kill PID
                    proc.send_signal(signum)
        if not early:
            out, err = proc.communicate(timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        status = None
    finally:
        _kill_group(proc.pid)                        # helpers the case left running
    return (status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), early)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _one_line_error(rc: int | None, out: str, err: str, status: int = 2,
                    prefix: str = "hbfpsim: error: ") -> bool:
    lines = err.splitlines()
    return (rc == status and not out.strip() and len(lines) == 1
            and lines[0].startswith(prefix) and len(lines[0]) > len(prefix))


def _messy_cli(rc: int, out: str, err: str) -> str:
    lines = err.splitlines()
    if rc == 2 and lines and lines[0].startswith("usage:"):
        return "argparse usage error: " + (lines[-1] if lines else "")
    why = []
    if rc != 2:
        why.append(f"exit status {rc}")
    if out.strip():
        why.append(f"stdout {short(out.strip().splitlines()[0], 60)!r}")
    if len(lines) != 1:
        why.append(f"{len(lines)} stderr lines" + (f" (first: {short(lines[0], 100)!r})"
                                                     if len(lines) > 1 else ""))
    elif not lines[0].startswith("hbfpsim: error: "):
        why.append("stderr does not start with 'hbfpsim: error: '")
    return "; ".join(why) + (": " + lines[-1] if lines else "")


RAW_WARNING = re.compile(r"^\S+:\d+: \w*Warning: ", re.MULTILINE)


def _judge_cli(case: Case, rc: int | None, out: str, err: str, early: bool, work: Path
               ) -> tuple[str, str, bool]:
    """(outcome, detail, the command failed) of a command-line case."""
    lines = err.splitlines()
    last = lines[-1] if lines else ""
    if rc is None:
        return "hang", f"no answer in {case.timeout:g} s; {last}", True
    if "Traceback (most recent call last)" in err or "Fatal Python error" in err:
        return "traceback", last, True
    if rc < 0:
        return "traceback", f"killed by signal {-rc}; {last}", True
    if case.signal is not None:
        signum = case.signal[0]
        if early:
            return "silent", f"finished (status {rc}) before the signal was sent", rc != 0
        # progress lines before the last are fine (cost calibrate prints its steps there)
        wanted = "hbfpsim: interrupted" if signum == signal.SIGINT else "hbfpsim: terminated"
        if rc == 128 + signum and not out.strip() and last == wanted:
            return "clean", last, True
        if rc == 0:
            return "silent", f"exit status 0 after signal {signum}", False
        why = [f"status {rc} (want {128 + signum})"] if rc != 128 + signum else []
        why += ["output on stdout"] if out.strip() else []
        why += [f"last stderr line is not {wanted!r}"] if last != wanted else []
        return "messy", f"after signal {signum}: {'; '.join(why)}: {last}", True
    if case.expect == "error":
        if rc == 0:
            return "silent", "accepted (exit status 0): " + short(out.strip()[-120:], 120), False
        if _one_line_error(rc, out, err):
            return "clean", last, True
        return "messy", _messy_cli(rc, out, err), True
    if rc == 0:
        try:
            ok = bool(case.expect(Result(rc, out, err, work)))
        except Exception as exc:  # noqa: BLE001 - a check that cannot read the output
            ok = False
            last = f"check raised {type(exc).__name__}: {exc}"
        if not ok:
            return "silent", "check failed on the output: " + short(
                (out.strip().splitlines() or [""])[-1], 120) + (f" [{last}]" if last else ""), \
                False
        if RAW_WARNING.search(err):
            return "messy", "right answer, but raw Python warnings: " + \
                RAW_WARNING.search(err).group(0) + last, False
        return "clean", "check passed", False
    if _one_line_error(rc, out, err):
        if case.refusal_ok:
            return "clean", "refused (acceptable): " + last, True
        return "silent", "refused a legal input: " + last, True
    return "messy", _messy_cli(rc, out, err), True


def _judge_api(case: Case, rc: int | None, out: str, err: str) -> tuple[str, str, bool]:
    """(outcome, detail, the call failed) of an API case."""
    lines = err.splitlines()
    if rc is None:
        return "hang", f"no answer in {case.timeout:g} s", True
    found = [line for line in out.splitlines() if line.startswith(MARKER)]
    if not found:
        why = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
        return "traceback", f"no result ({why}): {lines[-1] if lines else ''}", True
    result = json.loads(found[-1][len(MARKER):])
    if "raised" in result:
        message = result["message"]
        first = message.strip().splitlines()[0] if message.strip() else ""
        detail = f"{result['raised']}: {short(first, 240)}"
        documented_type_error = "TypeError" in result["mro"] and re.search(
            r"\b(must be|expected)\b", message) and "Traceback" not in message
        if not set(result["mro"]) & set(case.errors) and not documented_type_error:
            where = result.get("where", "")
            return "traceback", detail + (f" (at {where})" if where else ""), True
        one_line = bool(message.strip()) and "\n" not in message.strip()
        if case.expect == "error" or case.refusal_ok:
            if one_line:
                return "clean", detail if case.expect == "error" else "refused (acceptable): " \
                    + detail, True
            return "messy", ("empty message: " if not message.strip() else
                             "multi-line message: ") + detail, True
        return "silent", "refused a legal input: " + detail, True
    if case.expect == "error":
        return "silent", "accepted: returned " + result["returned"], False
    if not result.get("check"):
        extra = f" ({result['check_error']})" if result.get("check_error") else ""
        return "silent", f"check failed on {result['returned']}{extra}", False
    runtime = [w for w in result.get("warnings", []) if w.startswith("RuntimeWarning")]
    if runtime:
        return "messy", "right answer, but warnings: " + short(runtime[0], 200), False
    return "clean", "check passed", False


def classify(case: Case, tmpdir: str | Path) -> Outcome:
    """Run ``case`` in the fresh folder ``tmpdir`` (its ``work`` and ``outside`` subfolders
    are made here) and classify what happened."""
    root = Path(tmpdir)
    work, outside = root / "work", root / "outside"
    work.mkdir(parents=True, exist_ok=True)
    outside.mkdir(exist_ok=True)
    if case.setup is not None:
        case.setup(work)
    before = snapshot(root)
    start = time.monotonic()
    if case.kind == "cli":
        rc, out, err, early = _spawn([sys.executable, "-m", "hbfpsim", *case.argv], work,
                                     case.timeout, case.signal)
        outcome, detail, failed = _judge_cli(case, rc, out, err, early, work)
    else:
        rc, out, err, _ = _spawn([sys.executable, "-c", RUNNER, str(Path(__file__).resolve()),
                                  case.name], work, case.timeout, None)
        outcome, detail, failed = _judge_api(case, rc, out, err)
    seconds = time.monotonic() - start
    notes = []
    if outcome != "hang":
        after = snapshot(root)
        hidden = sorted(p for p in set(after) - set(before)
                        if TEMP_SIBLING.match(os.path.basename(p)))
        left = sorted(set(after) - set(before))
        gone = sorted(set(before) - set(after))
        changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
        found = []
        if hidden:
            found.append("temporary siblings left: " + ", ".join(map(short, hidden[:3])))
        if failed and left and not hidden:
            found.append("left: " + ", ".join(short(p) for p in left[:4])
                         + (f" (+{len(left) - 4})" if len(left) > 4 else ""))
        if failed and gone:
            found.append("removed: " + ", ".join(short(p) for p in gone[:4]))
        if failed and changed:
            found.append("changed: " + ", ".join(short(p) for p in changed[:4]))
        if found:
            if outcome in ("clean", "messy"):
                outcome, detail = "debris", "; ".join(found) + f" [{detail}]"
            else:
                notes.extend(found)
    if len(detail) > 400:
        detail = detail[:300] + f"...({len(detail)} chars)"
    return Outcome(case.name, case.group, outcome, detail, case.describe(), round(seconds, 2),
                   tuple(notes))


def run_case(case: Case) -> Outcome:
    """Classify ``case`` in a temporary folder of its own, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        return classify(case, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def api_child(name: str) -> int:
    """In the subprocess: run API case ``name``, print its result as one JSON line."""
    import traceback
    import warnings

    case = next((c for c in cases() if c.name == name), None)
    if case is None or case.call is None:
        print(f"no API case {name!r}", file=sys.stderr)
        return 3
    result: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = case.call(Path.cwd())
        except BaseException as err:       # noqa: BLE001 - classifying is the point
            frames = traceback.extract_tb(err.__traceback__)
            inner = frames[-1] if frames else None
            result = {"raised": type(err).__name__,
                      "mro": [c.__name__ for c in type(err).__mro__],
                      "message": str(err),
                      "where": (f"{os.path.relpath(inner.filename, REPO)}:{inner.lineno}"
                                if inner else "")}
        else:
            result = {"returned": _show(value)}
            if callable(case.expect):
                try:
                    result["check"] = bool(case.expect(value))
                except BaseException as err:   # noqa: BLE001
                    result["check"] = False
                    result["check_error"] = f"{type(err).__name__}: {err}"
    result["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    sys.stdout.write("\n" + MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


def _show(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"array of shape {tuple(shape)}, {value.dtype}: {reprlib.repr(value)[:120]}"
    return reprlib.repr(value)[:240]


# =============================================================================================
# Files the cases read: builders for setups
# =============================================================================================

def steps(*fns: Callable[[Path], None]) -> Callable[[Path], None]:
    """A setup running ``fns`` in order."""
    def setup(work: Path) -> None:
        for fn in fns:
            fn(work)
    return setup


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def fn(work: Path) -> None:
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return fn


def mkdir(name: str, with_file: bool = True) -> Callable[[Path], None]:
    def fn(work: Path) -> None:
        (work / name).mkdir(parents=True, exist_ok=True)
        if with_file:
            (work / name / "keep.txt").write_text("setup made this\n")
    return fn


def fifo(name: str = "fifo") -> Callable[[Path], None]:
    return lambda work: os.mkfifo(work / name)


def link(name: str, target: str) -> Callable[[Path], None]:
    """A symbolic link ``name`` -> ``target`` (relative to the link's folder, or absolute)."""
    return lambda work: os.symlink(target, work / name)


def sparse(name: str, size: int) -> Callable[[Path], None]:
    """A file of ``size`` NUL bytes that takes no disk space."""
    def fn(work: Path) -> None:
        with open(work / name, "wb") as f:
            f.truncate(size)
    return fn


def outside_file(name: str, content: str | bytes) -> Callable[[Path], None]:
    return lambda work: write(name, content)(work.parent / "outside")


def outside_dir(name: str) -> Callable[[Path], None]:
    return lambda work: mkdir(name)(work.parent / "outside")


GARBAGE = bytes(range(256)) * 16 + b"\x00\xff\xfe" * 100
NON_UTF8 = b"caf\xe9 = \xff\xfe\n[array]\nrows = 4\n"
DEEP_TOML = "a = " + "[" * 100000 + "]" * 100000 + "\n"
DEEP_TABLE_TOML = "a = " + "{ b = " * 3000 + "1" + " }" * 3000 + "\n"
DEEP_JSON = "[" * 100000 + "]" * 100000

# --- array configurations: raw TOML tokens, so that any value can be written ---------------

CONFIG: dict[str, dict[str, str]] = {
    "array": {"rows": "32", "cols": "32", "dataflow": '"ws"', "clock_ghz": "1.0"},
    "numerics": {"input": '"hbfp4"', "weight": '"hbfp4"', "block_accumulator": '"fixed16"',
                 "accumulator": '"fp32"', "output": '"fp32"'},
    "buffers": {"input_kib": "64", "weight_kib": "64", "output_kib": "64",
                "double_buffered": "true", "sram_bytes_per_cycle": "0"},
    "dram": {"bytes_per_cycle": "32", "latency_cycles": "100"},
}


def config_text(edits: dict[tuple[str, str], str | None] | None = None, extra: str = "") -> str:
    """An array configuration (array32-like) with ``edits``: (section, key) -> raw TOML value,
    or MISSING to leave the key out; ``extra`` is appended."""
    edits = edits or {}
    parts = []
    for section, keys in CONFIG.items():
        parts.append(f"[{section}]")
        for key, value in keys.items():
            value = edits.get((section, key), value)
            if value is not MISSING:
                parts.append(f"{key} = {value}")
        for (s, key), value in edits.items():
            if s == section and key not in keys and value is not MISSING:
                parts.append(f"{key} = {value}")
    return "\n".join(parts) + "\n" + extra


# --- traces -----------------------------------------------------------------------------------

def rec(**fields: Any) -> dict:
    """A trace record (``id, step, epoch, layer, phase, m, n, k`` and optional ``count``)."""
    return fields


def tiny_trace(name: str = "tiny", records: list[dict] | None = None, *, operands: bool = True,
               fill: float | None = None, capture: dict | None = None,
               model: str = "tiny") -> Callable[[Path], None]:
    """A small trace with seeded float32 operands (``fill``: every operand value instead)."""
    if records is None:
        records = [rec(id=0, step=0, epoch=0, layer="fc1", phase="fwd", m=8, n=16, k=64),
                   rec(id=1, step=0, epoch=0, layer="fc2", phase="fwd", m=8, n=4, k=16),
                   rec(id=2, step=0, epoch=1, layer="fc2", phase="bwd_data", m=8, n=16, k=4),
                   rec(id=3, step=0, epoch=1, layer="fc1", phase="bwd_weight", m=64, n=16,
                        k=8)]

    def fn(work: Path) -> None:
        import numpy as np
        root = work / name
        root.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        written = []
        for r in records:
            r = dict(r)
            if operands and "a" not in r:
                count = r.get("count", 1)
                lead = (count,) if count > 1 else ()
                (root / "operands").mkdir(exist_ok=True)
                for tag, shape in (("a", lead + (r["m"], r["k"])), ("b", lead + (r["k"], r["n"]))):
                    data = rng.standard_normal(shape).astype(np.float32)
                    if fill is not None:
                        with np.errstate(all="ignore"):
                            data[...] = np.float32(fill)
                    np.save(root / "operands" / f"{r['id']:06d}_{tag}.npy", data)
                    r[tag] = f"operands/{r['id']:06d}_{tag}.npy"
            written.append(r)
        manifest = {"schema": "hbfpsim-trace/1", "model": model, "records": written}
        if capture is not None:
            manifest["capture"] = capture
        (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return fn


def shape_only(name: str = "shape") -> Callable[[Path], None]:
    return tiny_trace(name, operands=False)


RECORD = {"id": "0", "step": "0", "epoch": "0", "layer": '"fc"', "phase": '"fwd"', "m": "4",
          "n": "4", "k": "8"}


def manifest_text(top: dict | None = None, record: dict | None = None,
                  records: str | None = None) -> str:
    """A manifest from raw JSON tokens: ``top`` and ``record`` override the top-level and the
    single record's fields (MISSING leaves one out); ``records`` replaces the records array."""
    rec = {**RECORD, **(record or {})}
    rec_text = "{" + ", ".join(f'"{k}": {v}' for k, v in rec.items() if v is not MISSING) + "}"
    fields = {"schema": '"hbfpsim-trace/1"', "model": '"tiny"',
              "records": f"[{rec_text}]" if records is None else records, **(top or {})}
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items() if v is not MISSING) + "}\n"


def manifest_dir(name: str, text: str) -> Callable[[Path], None]:
    return write(f"{name}/manifest.json", text)


def npy(name: str, kind: str = "good", shape: tuple[int, ...] = (4, 8)) -> Callable[[Path], None]:
    """An operand file: a float32 .npy of ``shape``, or a broken one (``kind``)."""
    def fn(work: Path) -> None:
        import numpy as np
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7
        if kind == "good":
            np.save(path, data)
        elif kind == "nan":
            np.save(path, np.full(shape, np.nan, np.float32))
        elif kind == "float64":
            np.save(path, data.astype(np.float64))
        elif kind == "object":
            np.save(path, data.astype(object), allow_pickle=True)
        elif kind == "fortran":
            np.save(path, np.asfortranarray(data))
        elif kind == "big-endian":
            np.save(path, data.astype(">f4"))
        elif kind == "wrong-shape":
            np.save(path, data.reshape(shape[::-1]))
        elif kind == "truncated":
            np.save(path, data)
            os.truncate(path, path.stat().st_size - 4)
        elif kind == "padded":
            np.save(path, data)
            with open(path, "ab") as f:
                f.write(b"\0\0\0\0")
        elif kind == "text":
            path.write_text("not a numpy file\n")
        elif kind == "version-3":
            with open(path, "wb") as f:
                np.lib.format.write_array(f, data, version=(3, 0))
        elif kind == "empty":
            path.write_bytes(b"")
        else:
            raise ValueError(kind)
    return fn


OPERAND_RECORD = {"a": '"a.npy"', "b": '"b.npy"'}

# --- run files --------------------------------------------------------------------------------

RUN = {"traces": '["tiny"]', "arrays": '["small16"]', "out": '"out"'}
VARIANT = {"name": '"v"', "input": '"hbfp4"', "block_accumulator": '"fixed13"'}
RULE = {"layers": '["fc1"]', "phases": '["fwd"]', "epochs": '[0, "last"]', "input": '"hbfp6"',
        "block_accumulator": '"fixed17"'}


def runfile_text(run: dict | None = None, variants: list[dict] | None = None,
                 rule: dict | None = None, extra: str = "") -> str:
    """A run file from raw TOML tokens: [run] is RUN with ``run``'s edits (MISSING removes a
    key); each variant a dict of tokens (default: VARIANT); ``rule`` adds one
    [[variant.rule]] (RULE with edits) to the last variant."""
    lines = ["[run]"]
    lines += [f"{k} = {v}" for k, v in {**RUN, **(run or {})}.items() if v is not MISSING]
    for variant in variants if variants is not None else [VARIANT]:
        lines.append("[[variant]]")
        lines += [f"{k} = {v}" for k, v in variant.items() if v is not MISSING]
    if rule is not None:
        lines.append("[[variant.rule]]")
        lines += [f"{k} = {v}" for k, v in {**RULE, **rule}.items() if v is not MISSING]
    return "\n".join(lines) + "\n" + extra


def run_setup(text: str, *more: Callable[[Path], None]) -> Callable[[Path], None]:
    """r.toml with ``text``, the tiny trace (with operands) and a shape-only one."""
    return steps(write("r.toml", text), tiny_trace(), shape_only(), *more)


# --- capture scripts --------------------------------------------------------------------------

GOOD_SCRIPT = """\
import torch


def main(capture):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with capture(model) as cap:
        for step in range(3):
            cap.start_step()
            model(torch.randn(2, 8)).sum().backward()
"""

BAD_SCRIPTS = {
    "no-main": "x = 1\n",
    "main-not-callable": "main = 3\n",
    "main-takes-nothing": "def main():\n    pass\n",
    "main-captures-nothing": "def main(capture):\n    pass\n",
    "positional-option": GOOD_SCRIPT.replace("capture(model)", "capture(model, [0])"),
    "not-a-model": GOOD_SCRIPT.replace("capture(model)", "capture('model')"),
    "unknown-option": GOOD_SCRIPT.replace("capture(model)", "capture(model, bogus=1)"),
    "bad-steps-option": GOOD_SCRIPT.replace("capture(model)", "capture(model, steps='x')"),
    "syntax-error": "def main(capture)\n    pass\n",
    "sys-exit-0": "import sys\n\ndef main(capture):\n    sys.exit(0)\n",
    "raises-valueerror": "def main(capture):\n    raise ValueError('the script says no')\n",
    "same-output-twice": GOOD_SCRIPT + "    with capture(model) as cap:\n"
                                       "        cap.start_step()\n",
}


# =============================================================================================
# Checks for legal inputs
# =============================================================================================

NEGATIVE = re.compile(r"(?<![\w.\-])-\d")


def sane(text: str, allow_inf: bool = False, signed: bool = False) -> bool:
    """No NaN, no infinity unless ``allow_inf``, no negative number unless ``signed``."""
    if re.search(r"\bnan\b", text, re.IGNORECASE) or (not signed and NEGATIVE.search(text)):
        return False
    return allow_inf or not re.search(r"\binf(inity)?\b", text, re.IGNORECASE)


def ok(*words: str, allow_inf: bool = False, signed: bool = False,
       files: Iterable[str] = ()) -> Callable:
    """A check: exit 0, sane output holding ``words``, and ``files`` written (``signed``:
    negative numbers are fine, e.g. the relative errors of synthesis reports)."""
    files = tuple(files)

    def check(r: Result) -> bool:
        return (r.rc == 0 and bool(r.out.strip()) and sane(r.out, allow_inf, signed)
                and all(w in r.out for w in words)
                and all((r.dir / f).exists() for f in files))
    return check


def gemm_ok(r: Result) -> bool:
    """``hbfpsim gemm`` output: total = compute + stall, utilization in (0, 100] %."""
    if not ok("cycles")(r):
        return False
    cycles = re.search(r"cycles\s+(\d+) = (\d+) compute \+ (\d+) stall", r.out)
    util = re.search(r"utilization\s+([\d.]+)%", r.out)
    return bool(cycles and util) and int(cycles[1]) == int(cycles[2]) + int(cycles[3]) \
        and 0 <= float(util[1]) <= 100


def run_ok(*words: str, files: Iterable[str] = ()) -> Callable:
    """``hbfpsim run`` output: the tables, no NaN (SQNR may be +inf when exact)."""
    return ok("summary rows in", *words, allow_inf=True, files=files)


def warns_or_refuses(r: Result) -> bool:
    """Legal, but the user must be told: exit 0 with a message on stderr."""
    return r.rc == 0 and bool(r.err.strip())


def trace_written(name: str) -> Callable:
    def check(r: Result) -> bool:
        return r.rc == 0 and (r.dir / name / "manifest.json").is_file() and sane(r.out)
    return check


def finite(shape: tuple[int, ...] | None = None, dtype: str | None = None) -> Callable:
    """An API check: a finite array (of ``shape`` and ``dtype``)."""
    def check(q) -> bool:
        import numpy as np
        q = np.asarray(q)
        return (bool(np.isfinite(q).all()) and (shape is None or q.shape == shape)
                and (dtype is None or q.dtype == np.dtype(dtype)))
    return check


def same_pair(pair) -> bool:
    """An API check: the two results are equal bit for bit (NaN where NaN), same dtype."""
    import numpy as np
    a, b = (np.asarray(x) for x in pair)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def mm_finite(shape: tuple[int, int]) -> Callable:
    def check(result) -> bool:
        out, stats = result
        return finite(shape, "float64")(out) and stats.shape == (*shape, stats.shape[2])
    return check


# =============================================================================================
# Hostile values
# =============================================================================================

HUGE = "9223372036854775808"            # 2^63
DIGITS31 = "1" + "0" * 30
LONG = "x" * 100_000                    # below Linux's 128 KiB limit for one argument
NON_UTF8_ARG = "\udcff"                 # the byte 0xff as a command-line argument
LONG_NAME = "n" * 300                   # longer than a file name may be (255)

INT_WORDS = [("empty", ""), ("minus-one", "-1"), ("zero", "0"), ("minus-zero", "-0"),
             ("nan", "nan"), ("inf", "inf"), ("1e400", "1e400"), ("2^63", HUGE),
             ("31-digits", DIGITS31), ("5000-digits", "9" * 5000), ("word", "abc"),
             ("3.5", "3.5"), ("hex", "0x10"), ("non-utf8", NON_UTF8_ARG)]
FLOAT_WORDS = [("empty", ""), ("minus-one", "-1"), ("nan", "nan"), ("inf", "inf"),
               ("-inf", "-inf"), ("1e400", "1e400"), ("word", "abc"), ("hex", "0x10"),
               ("non-utf8", NON_UTF8_ARG), ("2^63", HUGE)]

# input paths: (label, argument, setup); every one is wrong where a readable file is wanted
INPUT_PATHS = [
    ("missing", "no/such/file", None),
    ("empty-string", "", None),
    ("dash", "-", None),
    ("folder", "adir", mkdir("adir")),
    ("fifo", "fifo", fifo()),
    ("dev-null", "/dev/null", None),
    ("link-to-dev-zero", "zero", link("zero", "/dev/zero")),
    ("empty-file", "empty", write("empty", "")),
    ("binary", "garbage.bin", write("garbage.bin", GARBAGE)),
    ("non-utf8", "latin1.txt", write("latin1.txt", NON_UTF8)),
    ("dangling-link", "dangling", link("dangling", "no-such-target")),
    ("link-loop", "loop", steps(link("loop", "loop2"), link("loop2", "loop"))),
    ("link-to-outside-folder", "etc", link("etc", "/etc")),
    ("long-name", LONG_NAME, None),
    ("non-utf8-name", NON_UTF8_ARG, None),
    ("very-long", LONG, None),
]

# output folders: (label, argument, setup); every one must be refused (without --force)
OUTPUT_DIRS = [
    ("empty-string", "", None),
    ("dot", ".", None),
    ("dotdot", "..", None),
    ("existing-file", "afile", write("afile", "setup made this\n")),
    ("existing-folder", "adir", mkdir("adir")),
    ("fifo", "fifo", fifo()),
    ("parent-is-a-file", "afile/sub", write("afile", "setup made this\n")),
    ("long-name", LONG_NAME, None),
    ("dangling-link", "dangling", link("dangling", "no-such-target")),
    ("link-to-outside-folder", "outlink", steps(outside_dir("d"), link("outlink", "../outside/d"))),
]

# output files (replaced by default): (label, argument, setup, expect, refusal_ok)
def output_files(suffix: str) -> list[tuple[str, str, Any, Any, bool]]:
    f = f"out{suffix}"
    return [
        ("empty-string", "", None, "error", False),
        ("dot", ".", None, "error", False),
        ("dotdot", "..", None, "error", False),
        ("folder", f"d{suffix}", mkdir(f"d{suffix}"), "error", False),
        ("parent-is-a-file", f"afile/{f}", write("afile", "x\n"), "error", False),
        ("long-name", LONG_NAME + suffix, None, "error", False),
        ("existing-file", f, write(f, "old\n"), ok(files=[f]), False),
        ("fifo", f"fifo{suffix}", fifo(f"fifo{suffix}"), ok(), True),
        ("new-subfolders", f"a/b/c/{f}", None, ok(files=[f"a/b/c/{f}"]), False),
        ("link-to-outside-file", f"link{suffix}",
         steps(outside_file(f, "outside, keep me\n"), link(f"link{suffix}", f"../outside/{f}")),
         ok(files=[f"link{suffix}"]), True),
        ("non-utf8-name", NON_UTF8_ARG + suffix, None, ok(), True),
    ]


# =============================================================================================
# The catalogue, by command
# =============================================================================================

def top_level() -> Iterator[Case]:
    g = "hbfpsim"
    yield cli(g, "no-command", [])
    yield cli(g, "unknown-command", ["nonsense"])
    yield cli(g, "empty-command", [""])
    yield cli(g, "unknown-option", ["--bogus"])
    yield cli(g, "non-utf8-command", [NON_UTF8_ARG])
    yield cli(g, "version", ["--version"], expect=lambda r: r.rc == 0 and "hbfpsim" in r.out)
    yield cli(g, "help", ["--help"], expect=lambda r: r.rc == 0 and "usage" in r.out)
    for command in (["run"], ["advise"], ["gemm"], ["gemm", "array32", "1", "1"],
                    ["trace"], ["trace", "info"], ["trace", "import-scalesim", "x.csv"],
                    ["capture", "mlp-digits"], ["plot"], ["cost"], ["cost", "mac"],
                    ["cost", "array"], ["cost", "synth", "hbfp4"]):
        yield cli(g, "missing-argument:" + "-".join(command), command)
    yield cli(g, "extra-argument:gemm", ["gemm", "array32", "1", "1", "1", "1"])
    yield cli(g, "extra-argument:trace-info", ["trace", "info", str(TRACES / "mlp_digits"), "x"])
    yield cli(g, "unknown-action:trace", ["trace", "nonsense"])
    yield cli(g, "unknown-action:cost", ["cost", "nonsense"])
    yield cli(g, "unknown-figure:plot", ["plot", "nonsense"])


def formats_command() -> Iterator[Case]:
    g = "formats"
    bad = [("empty", ""), ("unknown", "fp7"), ("hbfp0", "hbfp0"), ("hbfp1", "hbfp1"),
           ("hbfp25", "hbfp25"), ("block-0", "hbfp4@0"), ("block-minus-1", "hbfp4@-1"),
           ("block-2^20+1", "hbfp4@1048577"), ("block-31-digits", "hbfp4@" + DIGITS31),
           ("mantissa-5000-digits", "hbfp" + "9" * 5000), ("block-missing", "hbfp4@"),
           ("two-blocks", "hbfp4@64@64"), ("mx-block", "mxfp4@32"), ("int8-block", "int8@64"),
           ("unicode-digit", "hbfp\u0664"), ("fullwidth-digit", "hbfp\uff14"),
           ("space-inside", "hbfp 4"), ("two-in-one", "fp32 bf16"), ("very-long", LONG),
           ("non-utf8", NON_UTF8_ARG), ("option-like", "-x"), ("one-bad-of-two", "hbfp4 fp7")]
    for label, value in bad:
        yield cli(g, label, ["formats", *value.split(" ")] if label == "one-bad-of-two"
                  else ["formats", value])
    legal = [("upper-case", ["HBFP4"], "hbfp4@64"), ("padded", [" mxfp4 "], "mxfp4"),
             ("smallest-hbfp", ["hbfp2@1"], "hbfp2@1"),
             ("largest-hbfp", ["hbfp24@1048576"], "hbfp24@1048576"),
             ("duplicates", ["hbfp4", "hbfp4"], "hbfp4@64")]
    for label, argv, word in legal:
        yield cli(g, label, ["formats", *argv], expect=ok(word))


def gemm_command() -> Iterator[Case]:
    g = "gemm"
    for dim, index in (("M", 2), ("N", 3), ("K", 4)):
        for label, value in INT_WORDS:
            argv = ["gemm", "array32", "64", "64", "64"]
            argv[index] = value
            yield cli(g, f"{dim}={label}", argv)
        argv = ["gemm", "array32", "64", "64", "64"]
        argv[index] = "1099511627777"            # 2^40 + 1
        yield cli(g, f"{dim}=2^40+1", argv)
        argv[index] = "1"
        yield cli(g, f"{dim}=1", argv, expect=gemm_ok)
        argv[index] = "1099511627776"            # 2^40: legal; refusing the fold count is fine
        yield cli(g, f"{dim}=2^40", argv, expect=gemm_ok, refusal_ok=True)
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"config={label}", ["gemm", value, "64", "64", "64"], setup)
    yield cli(g, "config=preset-upper-case", ["gemm", "ARRAY32", "8", "8", "8"])
    yield cli(g, "config=preset-with-suffix", ["gemm", "array32.toml", "8", "8", "8"])
    yield cli(g, "config=json-file", ["gemm", "c.json", "8", "8", "8"],
              write("c.json", '{"array": {"rows": 4}}'))
    yield cli(g, "config=scalesim-cfg", ["gemm", "s.cfg", "8", "8", "8"],
              write("s.cfg", "[architecture_presets]\nArrayHeight: 32\n"))
    yield cli(g, "config=preset-path", ["gemm", str(REPO / "hbfpsim/presets/tpu128.toml"),
                                        "8", "8", "8"], expect=gemm_ok)
    yield cli(g, "config=link-to-preset", ["gemm", "p.toml", "8", "8", "8"],
              link("p.toml", str(REPO / "hbfpsim/presets/small16.toml")), expect=gemm_ok)
    for label, value in (("empty", ""), ("upper-case", "FAST"), ("unknown", "slow")):
        yield cli(g, f"engine={label}", ["gemm", "array32", "8", "8", "8", "--engine", value])
    yield cli(g, "folds=2^22+1", ["gemm", "array32", "1", "131072", str(1048576 + 32)],
              expect=gemm_ok, refusal_ok=True)
    yield cli(g, "simpy-folds=2^20", ["gemm", "array32", "1", "32768", "32768", "--engine",
                                      "simpy"], expect=gemm_ok, refusal_ok=True, timeout=180)
    yield cli(g, "events-many-folds", ["gemm", "array32", "64", "4096", "4096", "--events"],
              expect=gemm_ok)
    yield cli(g, "all-2^40", ["gemm", "array32", "1099511627776", "1099511627776",
                              "1099511627776"], expect=gemm_ok, refusal_ok=True)


# --- array configuration keys (through `hbfpsim gemm FILE 64 64 64`) -------------------------

COMMON_BAD = [("bool", "true"), ("string", '"64"'), ("list", "[64]"), ("table", "{ v = 64 }"),
              ("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("date", "1979-05-27"),
              ("int64-max", "9223372036854775807"), ("2^63", HUGE), ("31-digits", DIGITS31),
              ("minus-one", "-1"), ("1e308", "1e308")]
LEGAL, EITHER = "legal", "either"
KEY_KINDS: dict[str, list[tuple[str, str, str]]] = {
    "side": [(n, v, "error") for n, v in COMMON_BAD] + [
        ("zero", "0", "error"), ("1.5", "1.5", "error"), ("32.0", "32.0", "error"),
        ("65537", "65537", "error"), ("one", "1", LEGAL), ("hex", "0x20", LEGAL),
        ("65536", "65536", EITHER)],
    "clock": [(n, v, "error") for n, v in COMMON_BAD] + [
        ("zero", "0", "error"), ("minus-zero", "-0.0", "error"), ("1e-300", "1e-300", "error"),
        ("1e-7", "1e-7", "error"), ("100.000001", "100.000001", "error"),
        ("1e-6", "1e-6", LEGAL), ("100", "100", LEGAL)],
    "kib": [(n, v, "error") for n, v in COMMON_BAD] + [
        ("zero", "0", "error"), ("minus-zero", "-0.0", "error"), ("1e-300", "1e-300", "error"),
        ("2^40+1", "1099511627777", "error"), ("2^40", "1099511627776", LEGAL),
        ("2^-10", "0.0009765625", EITHER)],
    "sram": [(n, v, "error") for n, v in COMMON_BAD] + [
        ("1e-300", "1e-300", "error"), ("2^40+1", "1099511627777", "error"),
        ("zero", "0", LEGAL), ("minus-zero", "-0.0", LEGAL), ("2^-10", "0.0009765625", LEGAL),
        ("2^40", "1099511627776", LEGAL)],
    "bandwidth": [(n, v, EITHER if n == "inf" else "error") for n, v in COMMON_BAD] + [
        ("zero", "0", "error"), ("minus-zero", "-0.0", "error"), ("1e-300", "1e-300", "error"),
        ("2^-10", "0.0009765625", LEGAL), ("2^40", "1099511627776", LEGAL)],
    "latency": [(n, v, "error") for n, v in COMMON_BAD] + [
        ("1.5", "1.5", "error"), ("100.0", "100.0", "error"),
        ("2^32+1", "4294967297", "error"), ("zero", "0", LEGAL), ("2^32", "4294967296", LEGAL)],
    "bool": [("int", "1", "error"), ("string", '"true"', "error"), ("list", "[true]", "error"),
             ("table", "{}", "error"), ("date", "1979-05-27", "error"),
             ("false", "false", LEGAL)],
    "dataflow": [("upper-case", '"WS"', "error"), ("empty", '""', "error"),
                 ("unknown", '"xs"', "error"), ("int", "1", "error"), ("bool", "true", "error"),
                 ("list", '["ws"]', "error"), ("padded", '" ws"', "error"),
                 ("os", '"os"', LEGAL), ("is", '"is"', LEGAL)],
    "format": [("bool", "true", "error"), ("int", "4", "error"), ("list", '["hbfp4"]', "error"),
               ("table", "{}", "error"), ("empty", '""', "error"), ("blank", '"   "', "error"),
               ("unknown", '"fp7"', "error"), ("nul", '"hbfp4\\u0000"', "error"),
               ("very-long", '"' + "x" * 100000 + '"', "error"),
               ("unicode-digit", '"hbfp\\u0664"', "error"), ("block-0", '"hbfp4@0"', "error"),
               ("hbfp1", '"hbfp1"', "error"), ("fp32-with-block-acc", '"fp32"', "error"),
               ("upper-case", '"HBFP4"', LEGAL), ("mxfp4", '"mxfp4"', LEGAL),
               ("hbfp24@2^20", '"hbfp24@1048576"', EITHER)],
    "acc": [("bool", "true", "error"), ("int", "16", "error"), ("list", '["fp32"]', "error"),
            ("table", "{}", "error"), ("empty", '""', "error"), ("blank", '"   "', "error"),
            ("unknown", '"fixed"', "error"), ("fixed7", '"fixed7"', "error"),
            ("fixed65", '"fixed65"', "error"), ("e1m1", '"e1m1"', "error"),
            ("e12m1", '"e12m1"', "error"), ("e2m0", '"e2m0"', "error"),
            ("mode-twice", '"fp32:rtz:rne"', "error"), ("empty-modifier", '"fp32:"', "error"),
            ("unicode-digit", '"fixed\\u0661\\u0666"', "error"),
            ("e11m52", '"e11m52"', LEGAL), ("all-modifiers", '"bf16:rtz:ftz:sat"', LEGAL),
            ("upper-case", '"FP32"', LEGAL), ("fixed32", '"fixed32"', EITHER)],
    "block_acc": [("bool", "true", "error"), ("int", "16", "error"),
                  ("list", '["fixed16"]', "error"), ("table", "{}", "error"),
                  ("empty", '""', "error"), ("blank", '"   "', "error"),
                  ("float", '"fp32"', "error"), ("fixed7", '"fixed7"', "error"),
                  ("fixed65", '"fixed65"', "error"), ("unknown", '"fixed"', "error"),
                  ("wrap", '"fixed16:wrap"', LEGAL), ("fixed8", '"fixed8"', LEGAL),
                  ("fixed64", '"fixed64"', LEGAL)],
}
CONFIG_KEYS = [("array", "rows", "side"), ("array", "cols", "side"),
               ("array", "dataflow", "dataflow"), ("array", "clock_ghz", "clock"),
               ("numerics", "input", "format"), ("numerics", "weight", "format"),
               ("numerics", "block_accumulator", "block_acc"),
               ("numerics", "accumulator", "acc"), ("numerics", "output", "acc"),
               ("buffers", "input_kib", "kib"), ("buffers", "weight_kib", "kib"),
               ("buffers", "output_kib", "kib"), ("buffers", "double_buffered", "bool"),
               ("buffers", "sram_bytes_per_cycle", "sram"),
               ("dram", "bytes_per_cycle", "bandwidth"), ("dram", "latency_cycles", "latency")]
REQUIRED_KEYS = [("array", "rows"), ("array", "cols"), ("array", "dataflow"),
                 ("buffers", "input_kib"), ("buffers", "weight_kib"), ("buffers", "output_kib"),
                 ("dram", "bytes_per_cycle")]


def expectation(verdict: str, check: Callable) -> dict:
    """Case keywords for a verdict: "error", LEGAL (check) or EITHER (check or refusal)."""
    if verdict == "error":
        return {"expect": "error"}
    return {"expect": check, "refusal_ok": verdict == EITHER}


def config_keys() -> Iterator[Case]:
    g = "config"
    argv = ["gemm", "a.toml", "64", "64", "64"]
    for section, key, kind in CONFIG_KEYS:
        for label, raw, verdict in KEY_KINDS[kind]:
            if (section, key) == ("numerics", "output") and label == "fixed32":
                verdict = "error"             # a fixed output buffer after a float chain
            text = config_text({(section, key): raw})
            yield cli(g, f"[{section}] {key}={label}", argv, write("a.toml", text),
                      **expectation(verdict, gemm_ok))
    for section, key in REQUIRED_KEYS:
        yield cli(g, f"[{section}] {key} missing", argv,
                  write("a.toml", config_text({(section, key): MISSING})))
    for section in CONFIG:
        yield cli(g, f"[{section}] unknown key", argv,
                  write("a.toml", config_text({(section, "bogus"): "1"})))
    structural = [
        ("empty-file", ""),
        ("comments-only", "# nothing here\n"),
        ("duplicate-key", config_text().replace("cols = 32", "cols = 32\ncols = 32")),
        ("duplicate-section", config_text() + "[array]\nrows = 4\n"),
        ("section-is-a-value", "array = 5\n" + config_text().split("[numerics]", 1)[1]),
        ("array-of-tables", config_text().replace("[array]", "[[array]]")),
        ("unknown-section", config_text() + "[extra]\nx = 1\n"),
        ("lookalike-key", config_text().replace("rows = 32", "r\u043ews = 32")),
        ("deep-array", DEEP_TOML),
        ("deep-inline-table", DEEP_TABLE_TOML),
        ("nul-byte", config_text().replace("rows = 32", "rows = 32\0")),
        ("json", '{"array": {"rows": 32}}\n'),
        ("key-without-value", config_text().replace("rows = 32", "rows =")),
        ("utf16", None),
    ]
    for label, text in structural:
        content = text if text is not None else config_text().encode("utf-16")
        yield cli(g, f"file={label}", argv, write("a.toml", content))
    yield cli(g, "file=sparse-300MiB", argv, sparse("a.toml", 300 * 2**20), timeout=120)
    yield cli(g, "file=binary", argv, write("a.toml", GARBAGE))
    yield cli(g, "file=non-utf8", argv, write("a.toml", NON_UTF8))
    yield cli(g, "file=bom", argv, write("a.toml", "\ufeff" + config_text()), expect=gemm_ok,
              refusal_ok=True)
    yield cli(g, "file=crlf", argv, write("a.toml", config_text().replace("\n", "\r\n")),
              expect=gemm_ok)
    yield cli(g, "file=block-acc-with-fp32", argv, write("a.toml", config_text(
        {("numerics", "input"): '"fp32"', ("numerics", "weight"): '"fp32"'})))
    yield cli(g, "file=one-byte-buffer", argv, write("a.toml", config_text(
        {("buffers", "input_kib"): "0.0009765625"})), expect=gemm_ok, refusal_ok=True)
    yield cli(g, "file=slowest-everything", ["gemm", "a.toml", "4096", "64", "64"],
              write("a.toml", config_text({("dram", "bytes_per_cycle"): "0.0009765625",
                                           ("dram", "latency_cycles"): "4294967296",
                                           ("buffers", "sram_bytes_per_cycle"): "0.0009765625",
                                           ("array", "clock_ghz"): "1e-6"})),
              expect=gemm_ok, refusal_ok=True)
    yield cli("cost array", "config-key=fp32-with-block-acc", ["cost", "array", "a.toml"],
              write("a.toml", config_text({("numerics", "input"): '"fp32"'})))
    yield cli("cost array", "config-key=rows-65536", ["cost", "array", "a.toml"],
              write("a.toml", config_text({("array", "rows"): "65536",
                                           ("array", "cols"): "65536"})),
              expect=ok("total"), refusal_ok=True)


# --- traces -----------------------------------------------------------------------------------

def trace_info_command() -> Iterator[Case]:
    g = "trace info"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"path={label}", ["trace", "info", value], setup)
    yield cli(g, "path=manifest-itself", ["trace", "info", "t/manifest.json"],
              manifest_dir("t", manifest_text()))
    yield cli(g, "path=link-to-shipped-trace", ["trace", "info", "t"],
              link("t", str(TRACES / "cnn_digits")), expect=ok("records"))
    for label, value in (("shipped-cnn", "cnn_digits"), ("shipped-bert", "bert_base_step")):
        yield cli(g, f"path={label}", ["trace", "info", str(TRACES / value)],
                  expect=ok("records"))
    special = [("manifest-is-fifo", fifo("t/manifest.json")),
               ("manifest-is-folder", mkdir("t/manifest.json")),
               ("manifest-link-to-dev-zero", link("t/manifest.json", "/dev/zero")),
               ("manifest-sparse-300MiB", sparse("t/manifest.json", 300 * 2**20)),
               ("manifest-dangling-link", link("t/manifest.json", "nowhere"))]
    for label, setup in special:
        yield cli(g, f"file={label}", ["trace", "info", "t"], steps(mkdir("t", False), setup))
    contents = [("empty", ""), ("binary", GARBAGE), ("non-utf8", b'{"model": "caf\xe9"}'),
                ("null", "null"), ("list", "[]"),
                ("number", "1"), ("string", '"x"'), ("deep-nesting", DEEP_JSON),
                ("deep-objects", '{"a":' * 50000 + "1" + "}" * 50000),
                ("NaN-literal", manifest_text(top={"description": "NaN"})),
                ("Infinity-literal", manifest_text(top={"description": "Infinity"})),
                ("1e400", manifest_text(top={"capture": '{"x": 1e400}'})),
                ("5000-digit-int", manifest_text(record={"m": "9" * 5000})),
                ("duplicate-key", manifest_text(top={"model": '"a", "model": "b"'})),
                ("truncated-json", manifest_text()[:-10])]
    for label, content in contents:
        yield cli(g, f"manifest={label}", ["trace", "info", "t"], manifest_dir("t", content))
    yield cli(g, "manifest=bom", ["trace", "info", "t"],      # JSON parsers MAY ignore a BOM
              manifest_dir("t", "\ufeff" + manifest_text()), expect=ok("records"),
              refusal_ok=True)
    top = {"schema": [("missing", MISSING), ("version-2", '"hbfpsim-trace/2"'),
                      ("upper-case", '"HBFPSIM-TRACE/1"'), ("int", "1"), ("null", "null"),
                      ("empty", '""'), ("list", '["hbfpsim-trace/1"]')],
           "model": [("missing", MISSING), ("int", "1"), ("null", "null"), ("list", "[]"),
                     ("object", "{}")],
           "description": [("int", "1"), ("null", "null"), ("list", "[]")],
           "capture": [("list", "[]"), ("string", '"x"'), ("int", "1"), ("null", "null")],
           "records": [("missing", MISSING), ("object", "{}"), ("string", '"x"'),
                       ("null", "null"), ("int", "1"), ("list-of-int", "[1]"),
                       ("list-of-null", "[null]"), ("list-of-list", "[[]]"),
                       ("list-of-string", '["x"]')],
           "bogus": [("unknown-key", "1")]}
    for key, values in top.items():
        for label, raw in values:
            text = manifest_text(top={key: raw})
            yield cli(g, f"manifest {key}={label}", ["trace", "info", "t"],
                      manifest_dir("t", text))
    legal_top = [("model=empty", {"model": '""'}), ("model=very-long", {"model": f'"{LONG}"'}),
                 ("capture=odd-epochs", {"capture": '{"epochs": "x", "truncated": null}'}),
                 ("records=empty", {"records": "[]"})]
    for label, edit in legal_top:
        yield cli(g, f"manifest {label}", ["trace", "info", "t"],
                  manifest_dir("t", manifest_text(top=edit)), expect=ok("records"))
    index_bad = [("minus-one", "-1"), ("float", "1.0"), ("bool", "true"), ("string", '"0"'),
                 ("null", "null"), ("list", "[0]"), ("2^62+1", str(2**62 + 1)),
                 ("1e3", "1e3")]
    size_bad = [("zero", "0"), ("minus-one", "-1"), ("float", "4.0"), ("bool", "true"),
                ("string", '"4"'), ("null", "null"), ("2^40+1", str(2**40 + 1)),
                ("1e3", "1e3"), ("2^63", HUGE)]
    record_values = {"id": index_bad, "step": index_bad, "epoch": index_bad,
                     "m": size_bad, "n": size_bad, "k": size_bad, "count": size_bad,
                     "layer": [("int", "1"), ("null", "null"), ("list", "[]"),
                               ("object", "{}")],
                     "phase": [("upper-case", '"FWD"'), ("unknown", '"forward"'),
                               ("empty", '""'), ("int", "1"), ("null", "null"),
                               ("list", '["fwd"]')],
                     "a": [("only-a", '"a.npy"'), ("not-npy", '"a.txt"'), ("int", "1"),
                           ("empty", '""'), ("absolute", '"/etc/passwd.npy"'),
                           ("parent", '"../a.npy"'), ("sneaky-parent", '"x/../../a.npy"'),
                           ("nul", '"a\\u0000.npy"'), ("backslash-root", '"\\\\a.npy"')],
                     "bias": [("unknown-field", "1")]}
    for key, values in record_values.items():
        for label, raw in values:
            yield cli(g, f"record {key}={label}", ["trace", "info", "t"],
                      manifest_dir("t", manifest_text(record={key: raw})))
    for key in ("id", "step", "epoch", "layer", "phase", "m", "n", "k"):
        yield cli(g, f"record {key}=missing", ["trace", "info", "t"],
                  manifest_dir("t", manifest_text(record={key: MISSING})))
    yield cli(g, "record duplicate-ids", ["trace", "info", "t"], manifest_dir(
        "t", manifest_text(records="[" + ", ".join([manifest_text().split('"records": [')[1]
                                                     .rsplit("]", 1)[0]] * 2) + "]")))
    yield cli(g, "record elements>2^40", ["trace", "info", "t"], manifest_dir(
        "t", manifest_text(record={"m": str(2**21), "n": "1", "k": str(2**20)})))
    legal_records = [("index=2^62", {"id": str(2**62), "step": str(2**62), "epoch": str(2**62)}),
                     ("m=2^40", {"m": str(2**40), "k": "1", "n": "1"}),
                     ("layer=empty", {"layer": '""'}),
                     ("layer=unicode", {"layer": '"\\u5c42 \\ud83d\\ude00"'}),
                     ("layer=very-long", {"layer": f'"{"y" * 100000}"'})]
    for label, edit in legal_records:
        yield cli(g, f"record {label}", ["trace", "info", "t"],
                  manifest_dir("t", manifest_text(record=edit)), expect=ok("records"))
    yield from operand_files()


def operand_files() -> Iterator[Case]:
    g = "trace info"
    text = manifest_text(record=OPERAND_RECORD)
    base = steps(manifest_dir("t", text), npy("t/b.npy", shape=(8, 4)))
    kinds = ("float64", "object", "fortran", "big-endian", "wrong-shape", "truncated", "padded",
             "text", "version-3", "empty")
    for kind in kinds:
        yield cli(g, f"operand={kind}", ["trace", "info", "t"], steps(base, npy("t/a.npy", kind)))
    special = [("fifo", fifo("t/a.npy")), ("folder", mkdir("t/a.npy")),
               ("missing", None), ("dangling-link", link("t/a.npy", "nowhere.npy")),
               ("link-loop", steps(link("t/a.npy", "c.npy"), link("t/c.npy", "a.npy"))),
               ("link-outside", steps(lambda w: npy("outside/a.npy")(w.parent),
                                      link("t/a.npy", "../../outside/a.npy"))),
               ("link-to-dev-zero", link("t/a.npy", "/dev/zero"))]
    for label, setup in special:
        yield cli(g, f"operand={label}", ["trace", "info", "t"],
                  steps(base, setup) if setup else base)
    yield cli(g, "operand=link-inside", ["trace", "info", "t"],
              steps(base, npy("t/real.npy"), link("t/a.npy", "real.npy")), expect=ok("records"))
    yield cli(g, "operand=nan-values", ["trace", "info", "t"], steps(base, npy("t/a.npy", "nan")),
              expect=ok("records"))


def import_scalesim_command() -> Iterator[Case]:
    g = "trace import-scalesim"
    conv_head = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, " \
                "Num Filter, Strides,\n"
    gemm_head = "Layer, M, N, K,\n"
    good = gemm_head + "fc1, 64, 32, 16,\n"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"topology={label}", ["trace", "import-scalesim", value, "out"], setup)
    yield cli(g, "topology=sparse-100MiB", ["trace", "import-scalesim", "t.csv", "out"],
              sparse("t.csv", 100 * 2**20))
    bad_rows = [("header-only", gemm_head), ("no-known-header", "a, b, c\n1, 2, 3\n"),
                ("conv-zero", conv_head + "c1, 0, 8, 3, 3, 1, 4, 1,\n"),
                ("conv-negative", conv_head + "c1, 8, 8, 3, 3, 1, 4, -1,\n"),
                ("conv-stride-zero", conv_head + "c1, 8, 8, 3, 3, 1, 4, 0,\n"),
                ("conv-float", conv_head + "c1, 8.5, 8, 3, 3, 1, 4, 1,\n"),
                ("conv-2^31+1", conv_head + f"c1, {2**31 + 1}, 8, 3, 3, 1, 4, 1,\n"),
                ("conv-31-digits", conv_head + f"c1, {DIGITS31}, 8, 3, 3, 1, 4, 1,\n"),
                ("conv-filter-too-big", conv_head + "c1, 8, 8, 9, 3, 1, 4, 1,\n"),
                ("conv-missing-cell", conv_head + "c1, 8, 8, 3, 3, 1,\n"),
                ("conv-extra-cell", conv_head + "c1, 8, 8, 3, 3, 1, 4, 1, 7,\n"),
                ("conv-word", conv_head + "c1, eight, 8, 3, 3, 1, 4, 1,\n"),
                ("conv-unicode-digit", conv_head + "c1, \u0668, 8, 3, 3, 1, 4, 1,\n"),
                ("conv-huge-depthwise", conv_head + f"DP1, 65536, 65536, 1, 1, {2**31}, 1, 1,\n"),
                ("gemm-zero", gemm_head + "fc1, 0, 32, 16,\n"),
                ("gemm-elements>2^40", gemm_head + f"fc1, {2**31}, {2**31}, 1,\n"),
                ("gemm-no-name", gemm_head + ", 64, 32, 16,\n"),
                ("binary-after-header", gemm_head.encode() + GARBAGE),
                ("non-utf8-row", gemm_head.encode() + b"fc\xe9, 64, 32, 16,\n")]
    for label, content in bad_rows:
        yield cli(g, f"topology={label}", ["trace", "import-scalesim", "t.csv", "out"],
                  write("t.csv", content))
    legal = [("gemm", good, "fc1"), ("crlf", good.replace("\n", "\r\n"), "fc1"),
             ("bom", "\ufeff" + good, "fc1"), ("unterminated-quote", good + '"fc2, 1, 2, 3\n', ""),
             ("many-rows", gemm_head + "".join(f"l{i}, 8, 8, 8,\n" for i in range(20000)), ""),
             ("unicode-name", gemm_head + "\u5c42, 64, 32, 16,\n", ""),
             ("nul-in-name", gemm_head + "fc\0, 64, 32, 16,\n", "")]
    for label, content, word in legal:
        yield cli(g, f"topology={label}", ["trace", "import-scalesim", "t.csv", "out"],
                  write("t.csv", content), expect=trace_written("out"),
                  refusal_ok=label in ("unterminated-quote", "nul-in-name"))
    for label, value, setup in OUTPUT_DIRS:
        yield cli(g, f"out={label}", ["trace", "import-scalesim", "t.csv", value],
                  steps(write("t.csv", good), setup) if setup else write("t.csv", good))
    yield cli(g, "out=existing-file --force", ["trace", "import-scalesim", "t.csv", "afile",
                                               "--force"],
              steps(write("t.csv", good), write("afile", "keep\n")))
    yield cli(g, "out=the-topology-itself", ["trace", "import-scalesim", "t.csv", "t.csv",
                                             "--force"], write("t.csv", good))
    yield cli(g, "out=existing-trace --force", ["trace", "import-scalesim", "t.csv", "tiny",
                                                "--force"],
              steps(write("t.csv", good), tiny_trace()), expect=trace_written("tiny"))
    yield cli(g, "out=link-to-outside --force", ["trace", "import-scalesim", "t.csv", "outlink",
                                                 "--force"],
              steps(write("t.csv", good), outside_dir("d"), link("outlink", "../outside/d")),
              expect=lambda r: trace_written("outlink")(r)
              and (r.dir.parent / "outside/d/keep.txt").is_file())
    yield cli(g, "out=non-utf8-name", ["trace", "import-scalesim", "t.csv", NON_UTF8_ARG],
              write("t.csv", good), expect=ok(), refusal_ok=True)
    for label, value in INT_WORDS + [("2^31+1", str(2**31 + 1))]:
        yield cli(g, f"batch={label}", ["trace", "import-scalesim", "t.csv", "out", "--batch",
                                        value], write("t.csv", good))
    yield cli(g, "batch=2^31", ["trace", "import-scalesim", "t.csv", "out", "--batch",
                                str(2**31)], write("t.csv", gemm_head + "fc1, 1, 1, 1,\n"),
              expect=trace_written("out"))
    yield cli(g, "batch=2^31-overflows-M", ["trace", "import-scalesim", "t.csv", "out", "--batch",
                                            str(2**31)], write("t.csv", good))
    yield cli(g, "scalesim-rounding", ["trace", "import-scalesim", "t.csv", "out",
                                       "--scalesim-rounding"],
              write("t.csv", conv_head + "c1, 230, 230, 7, 7, 3, 64, 2,\n"),
              expect=trace_written("out"))


def capture_command() -> Iterator[Case]:
    g = "capture"
    slow = {"timeout": 120}
    example = ["capture", "mlp-digits", "--out", "t", "--epochs", "1"]
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"source={label}", ["capture", value, "--out", "t"], setup, **slow)
    for label, value in (("upper-case-example", "MLP-DIGITS"), ("padded-example", "mlp-digits "),
                         ("directory-like-example", "mlp-digits/")):
        yield cli(g, f"source={label}", ["capture", value, "--out", "t"], **slow)
    for label, script in BAD_SCRIPTS.items():
        yield cli(g, f"script={label}", ["capture", "s.py", "--out", "t"], write("s.py", script),
                  **slow)
    yield cli(g, "script=nul-bytes", ["capture", "s.py", "--out", "t"],
              write("s.py", b"def main(capture):\0\n"), **slow)
    yield cli(g, "script=non-utf8", ["capture", "s.py", "--out", "t"],
              write("s.py", b"# caf\xe9\ndef main(capture):\n    pass\n"), **slow)
    yield cli(g, "script=out-is-the-script", ["capture", "s.py", "--out", "s.py", "--force"],
              write("s.py", GOOD_SCRIPT), **slow)
    for label, value, setup in OUTPUT_DIRS:
        yield cli(g, f"out={label}", ["capture", "mlp-digits", "--out", value, "--epochs", "1"],
                  setup, **slow)
    for label, value in INT_WORDS + [("10001", "10001")]:
        yield cli(g, f"epochs={label}", ["capture", "mlp-digits", "--out", "t", "--epochs",
                                         value], **slow)
    yield cli(g, "epochs-with-script", ["capture", "s.py", "--out", "t", "--epochs", "1"],
              write("s.py", GOOD_SCRIPT), **slow)
    for label, value in FLOAT_WORDS + [("1e13", "1e13")]:
        yield cli(g, f"max-mb={label}", [*example, "--max-mb", value], **slow)
    for label, value in (("zero", "0"), ("minus-zero", "-0"), ("1e-300", "1e-300")):
        yield cli(g, f"max-mb={label}", [*example, "--max-mb", value],
                  expect=trace_written("t"), **slow)
    script = ["capture", "s.py", "--out", "t"]
    for label, value in (("empty", ""), ("minus-one", "-1"), ("empty-item", "1,,2"),
                         ("unicode-digit", "\u0661"), ("word", "x"), ("2^63", HUGE),
                         ("31-digits", DIGITS31), ("non-utf8", NON_UTF8_ARG)):
        yield cli(g, f"steps={label}", [*script, "--steps", value], write("s.py", GOOD_SCRIPT),
                  **slow)
    yield cli(g, "steps-with-example", [*example, "--steps", "0"], **slow)
    yield cli(g, "steps=spaces", [*script, "--steps", " 0, 1 "], write("s.py", GOOD_SCRIPT),
              expect=trace_written("t"), **slow)
    yield cli(g, "steps=never-reached", [*script, "--steps", "99"], write("s.py", GOOD_SCRIPT),
              expect=warns_or_refuses, refusal_ok=True, **slow)
    for label, value in (("empty", ""), ("unclosed-bracket", "["), ("empty-item", "0,,2"),
                         ("no-match", "conv*"), ("very-long", LONG), ("non-utf8", NON_UTF8_ARG)):
        yield cli(g, f"layers={label}", [*script, "--layers", value], write("s.py", GOOD_SCRIPT),
                  **slow)
    yield cli(g, "layers-with-example", [*example, "--layers", "0"], **slow)
    yield cli(g, "layers=star", [*script, "--layers", "*"], write("s.py", GOOD_SCRIPT),
              expect=trace_written("t"), **slow)
    yield cli(g, "example-one-epoch", example, expect=trace_written("t"), **slow)
    yield cli(g, "existing-out --force", [*example, "--force"], mkdir("t"),
              expect=trace_written("t"), **slow)
    yield cli(g, "missing --out", ["capture", "mlp-digits"])


def density_command() -> Iterator[Case]:
    g = "density"
    for label, value in (("empty", ""), ("unknown", "fp7"), ("block-0", "hbfp4@0"),
                         ("very-long", LONG), ("non-utf8", NON_UTF8_ARG),
                         ("unicode-digit", "hbfp\u0664"), ("mx-block", "mxfp4@32")):
        yield cli(g, f"format={label}", ["density", value])
    yield cli(g, "format=upper-case", ["density", "HBFP4"], expect=ok("hbfp4@64"))
    yield cli(g, "format=duplicates", ["density", "hbfp4", "hbfp4"], expect=ok("hbfp4@64"),
              refusal_ok=True)
    yield cli(g, "format=largest-hbfp", ["density", "hbfp24@1048576"], expect=ok(),
              refusal_ok=True)
    bad_acc = [("empty", ""), ("equals-only", "="), ("no-accumulator", "hbfp4="),
               ("no-format", "=fixed16"), ("no-equals", "hbfp4"), ("fixed7", "hbfp4=fixed7"),
               ("fixed65", "hbfp4=fixed65"), ("two-equals", "hbfp4=fixed16=x"),
               ("unknown-format", "fp7=fixed16"), ("format-not-shown", "mxfp4=fixed16"),
               ("31-digit-width", "int8=fixed" + DIGITS31),
               ("unicode-digit", "hbfp4=fixed\u0661\u0666"), ("non-utf8", NON_UTF8_ARG)]
    for label, value in bad_acc:
        yield cli(g, f"acc={label}", ["density", "hbfp4", "--acc", value])
    legal_acc = [("fixed64", "hbfp4=fixed64", LEGAL), ("fixed8", "hbfp4=fixed8", LEGAL),
                 ("wrap", "hbfp4=fixed16:wrap", LEGAL), ("float", "hbfp4=e8m23", EITHER),
                 ("fixed-for-fp32", "fp32=fixed16", EITHER)]
    for label, value, verdict in legal_acc:
        yield cli(g, f"acc={label}", ["density", "hbfp4", "fp32", "--acc", value],
                  **expectation(verdict, ok("x")))
    yield cli(g, "acc=twice", ["density", "hbfp4", "--acc", "hbfp4=fixed16", "--acc",
                               "hbfp4=fixed20"], expect=ok(), refusal_ok=True)
    yield cli(g, "no-booster", ["density", "--no-booster"], expect=ok("fp32"))


def plot_command() -> Iterator[Case]:
    g = "plot density"
    bad = [("no-suffix", "noext"), ("suffix-only", ".png"), ("text-suffix", "density.txt"),
           ("hidden-in-folder", "dir/.svg"), ("non-utf8-suffix", "x." + NON_UTF8_ARG)]
    for label, value in bad:
        yield cli(g, f"out={label}", ["plot", "density", "--out", value])
    for label, value, setup, expect, refusal in output_files(".png"):
        yield cli(g, f"out={label}", ["plot", "density", "--out", value], setup, expect=expect,
                  refusal_ok=refusal)
    yield cli(g, "out=upper-case-suffix", ["plot", "density", "--out", "d.PNG"],
              expect=ok(files=["d.PNG"]))
    yield cli(g, "out=default", ["plot", "density"], expect=ok(files=["density.png"]))


def cost_command() -> Iterator[Case]:
    g = "cost mac"
    for label, value in (("empty", ""), ("unknown", "fp7"), ("very-long", LONG),
                         ("non-utf8", NON_UTF8_ARG), ("block-0", "hbfp4@0")):
        yield cli(g, f"format={label}", ["cost", "mac", value])
    for label, value in (("smallest-hbfp", "hbfp2@1"), ("largest-hbfp", "hbfp24@1048576"),
                         ("upper-case", "MXFP4")):
        yield cli(g, f"format={label}", ["cost", "mac", value], expect=ok("total"),
                  refusal_ok=True)
    bad_acc = [("empty", ""), ("fixed7", "fixed7"), ("fixed65", "fixed65"), ("fixed0", "fixed0"),
               ("e1m1", "e1m1"), ("e12m52", "e12m52"), ("sat-and-wrap", "fixed16:wrap:sat"),
               ("empty-modifier", "fixed16:"), ("colon", ":"), ("space-inside", "fixed 16"),
               ("unicode-digit", "fixed\u0661\u0666"), ("31-digits", "fixed" + DIGITS31),
               ("very-long", "fixed" + "9" * 5000), ("non-utf8", NON_UTF8_ARG)]
    for label, value in bad_acc:
        yield cli(g, f"acc={label}", ["cost", "mac", "hbfp4", "--acc", value])
    legal_acc = [("fixed64", "hbfp4", "fixed64", LEGAL),
                 ("fixed8-for-hbfp8", "hbfp8", "fixed8", LEGAL),
                 ("padded", "hbfp4", " fixed16 ", LEGAL),
                 ("float-for-hbfp", "hbfp4", "e11m52", EITHER),
                 ("fixed-for-fp32", "fp32", "fixed16", EITHER),
                 ("stochastic-for-fp8", "fp8_e4m3", "fp16:stochastic", LEGAL)]
    for label, fmt, acc, verdict in legal_acc:
        yield cli(g, f"acc={label}", ["cost", "mac", fmt, "--acc", acc],
                  **expectation(verdict, ok("total")))
    g = "cost array"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"config={label}", ["cost", "array", value], setup)
    yield cli(g, "config=preset", ["cost", "array", "tpu128"], expect=ok("total"))
    g = "cost synth"
    synth = {"timeout": 240}
    for label, value in (("fp32", "fp32"), ("bf16", "bf16"), ("empty", ""), ("unknown", "fp7"),
                         ("block-0", "hbfp4@0"), ("very-long", LONG), ("non-utf8", NON_UTF8_ARG)):
        yield cli(g, f"format={label}", ["cost", "synth", value, "--acc", "fixed16"])
    for label, value in (("float", "fp32"), ("empty", ""), ("fixed7", "fixed7"),
                         ("fixed65", "fixed65"), ("half-float", "e5m10"), ("unknown", "fixed")):
        yield cli(g, f"acc={label}", ["cost", "synth", "hbfp4", "--acc", value])
    for label, value, setup, expect, refusal in output_files(".v"):
        if label in ("existing-file", "fifo", "link-to-outside-file", "non-utf8-name"):
            continue                         # each synthesizes: one legal run is enough
        if expect != "error":
            expect = ok("transistors", signed=True, files=[value])
        yield cli(g, f"verilog={label}", ["cost", "synth", "hbfp4", "--acc", "fixed16",
                                          "--verilog", value], setup, expect=expect,
                  refusal_ok=refusal, **synth)
    yield cli(g, "widest", ["cost", "synth", "hbfp8", "--acc", "fixed64"],
              expect=ok("transistors", signed=True),
              refusal_ok=True, **synth)
    g = "cost calibrate"
    for label, value, setup, expect, refusal in output_files(".json"):
        if label in ("fifo", "link-to-outside-file", "non-utf8-name", "existing-file"):
            continue                         # each runs the whole calibration
        if expect != "error":
            expect = ok("wrote", signed=True, files=[value])
        yield cli(g, f"out={label}", ["cost", "calibrate", "--out", value], setup, expect=expect,
                  refusal_ok=refusal, timeout=400)


def rtl_command() -> Iterator[Case]:
    """``hbfpsim rtl cosim`` and ``rtl emit``. The legal co-simulations need the rtl extra:
    without it they are refused (cleanly)."""
    g = "rtl cosim"
    small = ["rtl", "cosim", "array32", "4", "5", "6"]
    built = {"expect": ok("equal"), "refusal_ok": True, "timeout": 240}
    for dim, index in (("M", 3), ("N", 4), ("K", 5)):
        for label, value in INT_WORDS:
            argv = list(small)
            argv[index] = value
            yield cli(g, f"{dim}={label}", argv)
        argv = list(small)
        argv[index] = "1099511627777"             # 2^40 + 1
        yield cli(g, f"{dim}=2^40+1", argv)
        argv[index] = "4194304"                   # 2^22: more elements than it takes
        yield cli(g, f"{dim}=2^22", argv)
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"config={label}", ["rtl", "cosim", value, "4", "5", "6"], setup)
    for label, value in (("empty", ""), ("unknown", "fp7"), ("fp32", "fp32"), ("int8", "int8"),
                         ("fp8", "fp8_e4m3"), ("block-0", "hbfp4@0"), ("very-long", LONG),
                         ("non-utf8", NON_UTF8_ARG)):
        yield cli(g, f"format={label}", [*small, "--format", value])
    for label, value in [*INT_WORDS[:2], ("2^63", HUGE), ("word", "abc"), ("3.5", "3.5")]:
        yield cli(g, f"seed={label}", [*small, "--seed", value])
    for label, text in (("65-rows", config_text({("array", "rows"): "65"})),
                        ("stochastic-chain", config_text(
                            {("numerics", "accumulator"): '"fp32:stochastic"'}))):
        yield cli(g, f"config={label}", ["rtl", "cosim", "a.toml", "4", "5", "6"],
                  write("a.toml", text))
    yield cli(g, "legal", [*small, "--seed", "9223372036854775807"], **built)
    yield cli(g, "legal-format", [*small, "--format", "MXFP4"], **built)
    g = "rtl emit"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"config={label}", ["rtl", "emit", value, "--out", "v"], setup)
    yield cli(g, "format=fp32", ["rtl", "emit", "array32", "--out", "v", "--format", "fp32"])
    for label, value, setup in OUTPUT_DIRS:
        yield cli(g, f"out={label}", ["rtl", "emit", "array32", "--out", value], setup)
    yield cli(g, "out=existing-folder --force", ["rtl", "emit", "array32", "--out", "adir",
                                                 "--force"], mkdir("adir"),
              expect=ok("wrote", files=["adir/hbfpsim_array.v"]))
    yield cli(g, "legal", ["rtl", "emit", "small16", "--out", "v", "--format", "hbfp8"],
              expect=ok("wrote", files=["v/hbfpsim_array.v"]))
    g = "rtl synth"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"config={label}", ["rtl", "synth", value], setup)
    for label, value in (("fp32", "fp32"), ("unknown", "fp7"), ("empty", "")):
        yield cli(g, f"format={label}", ["rtl", "synth", "array32", "--format", value])
    yield cli(g, "legal", ["rtl", "synth", "small16", "--format", "mxfp4"],
              expect=ok("whole array"), refusal_ok=True, timeout=240)


# --- run files and `hbfpsim run` --------------------------------------------------------------

def run_command() -> Iterator[Case]:
    g = "run"
    fast = ["--no-plots", "--quiet"]
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"runfile={label}", ["run", value, *fast], setup)
    contents = [("empty-content", ""), ("binary-content", GARBAGE),
                ("non-utf8-content", NON_UTF8), ("deep-nesting", DEEP_TOML),
                ("json", '{"run": {}}'),
                ("array-config", config_text()), ("nul-byte", runfile_text() + "\0")]
    for label, content in contents:
        yield cli(g, f"runfile={label}", ["run", "r.toml", *fast], run_setup(content))
    yield cli(g, "runfile=sparse-300MiB", ["run", "r.toml", *fast], sparse("r.toml", 300 * 2**20),
              timeout=120)
    yield cli(g, "runfile=bom", ["run", "r.toml", *fast], run_setup("\ufeff" + runfile_text()),
              expect=run_ok(), refusal_ok=True)
    yield cli(g, "runfile=quickstart", ["run", str(QUICKSTART), *fast],
              expect=run_ok("booster on array32"), timeout=180)
    for label, value, setup in OUTPUT_DIRS:
        yield cli(g, f"out={label}", ["run", "r.toml", "--out", value, *fast],
                  steps(run_setup(runfile_text()), setup) if setup else run_setup(runfile_text()))
    yield cli(g, "out=non-utf8-name", ["run", "r.toml", "--out", NON_UTF8_ARG, *fast],
              run_setup(runfile_text()), expect=run_ok(), refusal_ok=True)
    yield cli(g, "out=the-input-trace --force", ["run", "r.toml", "--out", "tiny", "--force",
                                                 *fast], run_setup(runfile_text()))
    yield cli(g, "out=the-run-file --force", ["run", "r.toml", "--out", "r.toml", "--force",
                                              *fast], run_setup(runfile_text()))
    yield cli(g, "out=the-working-folder --force", ["run", "r.toml", "--out", "../work",
                                                    "--force", *fast], run_setup(runfile_text()))
    yield cli(g, "out=existing-folder --force", ["run", "r.toml", "--out", "adir", "--force",
                                                 *fast],
              run_setup(runfile_text(), mkdir("adir")), expect=run_ok(files=["adir/gemms.csv"]))
    yield cli(g, "out=link-to-outside --force", ["run", "r.toml", "--out", "outlink", "--force",
                                                 *fast],
              run_setup(runfile_text(), outside_dir("d"), link("outlink", "../outside/d")),
              expect=lambda r: run_ok()(r) and (r.dir.parent / "outside/d/keep.txt").is_file())
    yield cli(g, "with-figures", ["run", "r.toml", "--quiet"], run_setup(runfile_text()),
              expect=run_ok(files=["out/run.json"]), timeout=120)
    yield from runfile_keys()
    yield from run_data()


def runfile_keys() -> Iterator[Case]:
    g = "run file"
    argv = ["run", "r.toml", "--no-plots", "--quiet"]

    def case(what, text, verdict="error", check=None, argv=argv, more=(), **kw):
        return cli(g, what, argv, run_setup(text, *more),
                   **expectation(verdict, check or run_ok()), **kw)

    run_values = {
        "traces": [("missing", MISSING, "error"), ("empty-string", '""', "error"),
                   ("empty-list", "[]", "error"), ("int", "[1]", "error"),
                   ("bool", "[true]", "error"), ("table", "{ a = 1 }", "error"),
                   ("no-such-trace", '["nope"]', "error"),
                   ("manifest-path", '["tiny/manifest.json"]', "error"),
                   ("root", '["/"]', "error"), ("nul", '["\\u0000"]', "error"),
                   ("outside", '["../outside"]', "error"), ("fifo", '["fifo"]', "error"),
                   ("string", '"tiny"', LEGAL), ("twice", '["tiny", "tiny"]', EITHER),
                   ("shape-only", '["shape"]', LEGAL)],
        "arrays": [("missing", MISSING, "error"), ("empty-list", "[]", "error"),
                   ("empty-name", '[""]', "error"), ("unknown", '["nope"]', "error"),
                   ("int", "[1]", "error"), ("upper-case", '["SMALL16"]', "error"),
                   ("bad-config", '["bad.toml"]', "error"), ("fifo", '["fifo"]', "error"),
                   ("outside-folder", '["../outside"]', "error"),
                   ("string", '"small16"', LEGAL), ("twice", '["small16", "small16"]', EITHER),
                   ("file", '["a.toml"]', LEGAL)],
        "out": [("int", "1", "error"), ("empty", '""', "error"), ("blank", '"   "', "error"),
                ("bool", "true", "error"), ("list", "[]", "error"), ("dot", '"."', "error"),
                ("dotdot", '".."', "error"), ("existing-file", '"afile"', "error"),
                ("nul", '"\\u0000"', "error"), ("the-trace", '"tiny"', "error")],
        "seed": [("minus-one", "-1", "error"), ("float", "1.5", "error"), ("bool", "true", "error"),
                 ("string", '"0"', "error"), ("nan", "nan", "error"), ("list", "[]", "error"),
                 ("2^63", HUGE, "error"), ("int64-max", "9223372036854775807", LEGAL)],
        "max_outputs": [("zero", "0", "error"), ("minus-one", "-1", "error"),
                        ("bool", "true", "error"), ("float", "1.5", "error"),
                        ("string", '"1"', "error"), ("2^26+1", str(2**26 + 1), "error"),
                        ("inf", "inf", "error"), ("one", "1", LEGAL), ("2^26", str(2**26), LEGAL)],
        "max_macs": [("zero", "0", "error"), ("minus-one", "-1", "error"),
                     ("bool", "true", "error"), ("float", "1.5", "error"),
                     ("2^40+1", str(2**40 + 1), "error"), ("nan", "nan", "error"),
                     ("one", "1", LEGAL), ("2^40", str(2**40), LEGAL)],
        "synthetic": [("upper-case", '"GAUSSIAN"', "error"), ("empty", '""', "error"),
                      ("int", "1", "error"), ("bool", "true", "error"),
                      ("list", '["gaussian"]', "error"),
                      ("fitted-without-fit", '"fitted"', "error")],
        "bogus": [("unknown-key", "1", "error")],
    }
    extra = (write("bad.toml", "[array]\nrows = 0\n"), fifo(), write("afile", "keep\n"),
             write("a.toml", config_text()))
    for key, values in run_values.items():
        for label, raw, verdict in values:
            yield case(f"[run] {key}={label}", runfile_text({key: raw}), verdict, more=extra)
    fitted = {"synthetic": '"fitted"', "traces": '["shape"]'}
    for label, raw, verdict in (("int", "1", "error"), ("missing-trace", '"nope"', "error"),
                                ("shape-only", '"shape"', "error"), ("empty", '""', "error"),
                                ("captured", '"tiny"', LEGAL)):
        yield case(f"[run] fit={label}", runfile_text({**fitted, "fit": raw}), verdict)
    yield case("[run] fit-without-fitted", runfile_text({"fit": '"tiny"'}), EITHER)
    yield case("[run] synthetic=gaussian", runfile_text({"synthetic": '"gaussian"',
                                                          "traces": '["shape"]'}), LEGAL)
    for label, text in (("missing", runfile_text().replace("[run]", "[x]")),
                        ("a-value", "run = 1\n" + runfile_text().split("\n", 4)[4]),
                        ("array-of-tables", runfile_text().replace("[run]", "[[run]]")),
                        ("unknown-table", runfile_text() + "[runs]\nx = 1\n")):
        yield case(f"[run] table={label}", text)
    variant_tables = [("none", runfile_text(variants=[])),
                      ("a-value", runfile_text(variants=[]) + "variant = 1\n"),
                      ("a-table", runfile_text(variants=[]) + '[variant]\nname = "v"\n'),
                      ("empty-list", runfile_text(variants=[]) + "variant = []\n"),
                      ("empty-table", runfile_text(variants=[{}])),
                      ("duplicate-names", runfile_text(variants=[VARIANT, VARIANT])),
                      ("unknown-key", runfile_text(variants=[{**VARIANT, "bogus": "1"}]))]
    for label, text in variant_tables:
        yield case(f"[[variant]] {label}", text)
    variant_values = {
        "name": [("empty", '""', "error"), ("int", "1", "error"), ("space", '"a b"', "error"),
                 ("slash", '"a/b"', "error"), ("dotdot", '".."', "error"),
                 ("parent-path", '"../x"', "error"), ("colon", '"a:b"', "error"),
                 ("bool", "true", "error"), ("nul", '"a\\u0000"', "error"),
                 ("unicode-letter", '"\\u00e9t\\u00e9"', EITHER)],   # ASCII: documented
        "schedule": [("upper-case", '"BOOSTER"', "error"), ("empty", '""', "error"),
                     ("int", "1", "error")],
        "input": [("empty", '""', "error"), ("int", "1", "error"), ("unknown", '"nope"', "error"),
                  ("bool", "true", "error"), ("list", '["hbfp4"]', "error"),
                  ("fp32-with-block-acc", '"fp32"', "error"), ("upper-case", '"HBFP6"', LEGAL)],
        "weight": [("unknown", '"nope"', "error"), ("int", "1", "error"),
                   ("other-block-format", '"mxfp4"', EITHER)],
        "block_accumulator": [("float", '"fp32"', "error"), ("fixed7", '"fixed7"', "error"),
                              ("int", "1", "error"), ("narrow", '"fixed8"', LEGAL)],
        "accumulator": [("unknown", '"nope"', "error"), ("fixed", '"fixed16"', EITHER),
                        ("tiny-float", '"e2m1"', LEGAL)],
        "output": [("fixed-after-float", '"fixed16"', "error"), ("unknown", '"nope"', "error")],
    }
    for key, values in variant_values.items():
        for label, raw, verdict in values:
            if key == "schedule":
                variant = {"name": '"b"', "schedule": raw}
            else:
                variant = {**VARIANT, key: raw}
            yield case(f"[[variant]] {key}={label}", runfile_text(variants=[variant]), verdict)
    booster = {"name": '"b"', "schedule": '"booster"'}
    yield case("[[variant]] schedule=booster", runfile_text(variants=[booster]), LEGAL)
    yield case("[[variant]] schedule-with-input", runfile_text(
        variants=[{**booster, "input": '"hbfp4"'}]))
    yield case("[[variant]] schedule-with-rule", runfile_text(variants=[booster], rule={}))
    yield case("[[variant]] very-long-name with figures", runfile_text(
        variants=[{**VARIANT, "name": '"' + "x" * 300 + '"'}]), EITHER,
        argv=["run", "r.toml", "--quiet"], timeout=120)
    rule_values = {
        "layers": [("string", '"fc1"', "error"), ("empty", "[]", "error"), ("int", "[1]", "error"),
                   ("first", '["@first"]', LEGAL), ("unclosed-bracket", '["["]', LEGAL)],
        "phases": [("upper-case", '["FWD"]', "error"), ("unknown", '["forward"]', "error"),
                   ("empty", "[]", "error"), ("string", '"fwd"', "error"), ("int", "[1]", "error")],
        "epochs": [("one", "[1]", "error"), ("three", "[1, 2, 3]", "error"),
                   ("negative", "[-1, 2]", "error"), ("word", '["first", 2]', "error"),
                   ("bools", "[true, false]", "error"), ("float", "[1.5, 2]", "error"),
                   ("string", '"last"', "error"), ("empty", "[]", "error"),
                   ("last-last", '["last", "last"]', LEGAL), ("reversed", "[2, 1]", EITHER),
                   ("int64-max", "[0, 9223372036854775807]", LEGAL)],
        "input": [("unknown", '"nope"', "error"), ("int", "1", "error")],
        "bogus": [("unknown-key", "1", "error")],
    }
    for key, values in rule_values.items():
        for label, raw, verdict in values:
            yield case(f"[[variant.rule]] {key}={label}", runfile_text(rule={key: raw}), verdict)
    no_numerics = {k: MISSING for k in ("input", "block_accumulator")}
    yield case("[[variant.rule]] no-numerics", runfile_text(rule=no_numerics))
    yield case("[[variant.rule]] a-value", runfile_text() + "[[variant]]\nname = 'w'\n"
               "rule = 1\n")
    yield case("[[variant.rule]] list-of-int", runfile_text() + "[[variant]]\nname = 'w'\n"
               "rule = [1]\n")


def run_data() -> Iterator[Case]:
    """Legal traces with extreme data: NaN, infinities, overflow, zeros, odd shapes."""
    g = "run data"
    argv = ["run", "r.toml", "--no-plots", "--quiet"]
    text = runfile_text(variants=[VARIANT, {"name": '"fp32"', "input": '"fp32"'},
                                  {"name": '"fp8"', "input": '"fp8_e4m3"',
                                   "accumulator": '"fp16"'},
                                  {"name": '"b"', "schedule": '"booster"'}])
    for label, fill, verdict in (("nan", float("nan"), EITHER), ("inf", float("inf"), EITHER),
                                 ("float32-max", 3.4028235e38, EITHER), ("zeros", 0.0, LEGAL),
                                 ("subnormal", 1e-45, LEGAL), ("huge-mixed", 1e30, LEGAL)):
        yield cli(g, f"operands={label}", argv, steps(write("r.toml", text),
                                                      tiny_trace(fill=fill)),
                  **expectation(verdict, run_ok()))
    shapes = {"1x1x1": [rec(id=0, step=0, epoch=0, layer="a", phase="fwd", m=1, n=1, k=1)],
              "k=1": [rec(id=0, step=0, epoch=0, layer="a", phase="fwd", m=64, n=64, k=1)],
              "count=3": [rec(id=0, step=0, epoch=0, layer="a", phase="fwd", m=4, n=4, k=64,
                               count=3)],
              "epoch=2^62": [rec(id=0, step=2**62, epoch=2**62, layer="a", phase="fwd", m=4,
                                  n=4, k=64)],
              "bwd-only": [rec(id=5, step=0, epoch=0, layer="a", phase="bwd_weight", m=4, n=4,
                                k=64)]}
    for label, records in shapes.items():
        yield cli(g, f"records={label}", argv, steps(write("r.toml", text),
                                                     tiny_trace(records=records)),
                  expect=run_ok())
    for label, capture in (("epochs=word", {"epochs": "x"}), ("epochs=0", {"epochs": 0}),
                           ("epochs=-5", {"epochs": -5}), ("epochs=true", {"epochs": True}),
                           ("epochs=1e300", {"epochs": 1e300})):
        yield cli(g, f"capture {label}", argv, steps(write("r.toml", text),
                                                      tiny_trace(capture=capture)),
                  expect=run_ok())
    yield cli(g, "capture epochs-below-captured", argv,      # a record past the run's end
              steps(write("r.toml", text), tiny_trace(capture={"epochs": 1})))
    yield cli(g, "records=none", argv, steps(write("r.toml", text),
                                             tiny_trace(records=[])), expect=run_ok(),
              refusal_ok=True)
    yield cli(g, "shape-only big", argv, steps(write("r.toml", runfile_text(
        {"traces": '["big"]', "synthetic": '"gaussian"'})), tiny_trace("big", [
            rec(id=0, step=0, epoch=0, layer="a", phase="fwd", m=2**14, n=2**14, k=2**14)],
            operands=False)), expect=run_ok(), timeout=120)
    yield cli(g, "zeros with figures", ["run", "r.toml", "--quiet"],
              steps(write("r.toml", text), tiny_trace(fill=0.0)),
              expect=run_ok(files=["out/run.json"]), timeout=120)
    yield cli(g, "one-record with figures", ["run", "r.toml", "--quiet"],
              steps(write("r.toml", text), tiny_trace(records=[
                  rec(id=0, step=0, epoch=0, layer="a", phase="fwd", m=4, n=4, k=64)])),
              expect=run_ok(files=["out/run.json"]), timeout=120)
    yield cli(g, "operand-swapped-after-check", argv, steps(
        write("r.toml", text), tiny_trace(), npy("tiny/operands/000000_a.npy", "truncated",
                                                 (8, 64))))


# --- sweeps: `hbfpsim sweep run | status | export` --------------------------------------------

SWEEP = """[sweep]
traces = ["tiny"]
base = "small16"
constraints = ["rows * cols <= 256"]
[axes]
rows = [8, 16]
cols = [8, 16]
dram_bytes_per_cycle = {start = 8, stop = 32, factor = 2}
[[variant]]
name = "fp32"
input = "fp32"
"""


def sweep_setup(text: str = SWEEP, *more: Callable[[Path], None]) -> Callable[[Path], None]:
    return steps(write("s.toml", text), tiny_trace(), *more)


def empty_store(name: str = "s.sqlite") -> Callable[[Path], None]:
    def fn(work: Path) -> None:
        from hbfpsim.sweep.store import Store
        Store(work / name).close()
    return fn


def sweep_ok(*words: str, files: Iterable[str] = ()) -> Callable:
    return ok("runs", *words, files=files)


def sweep_command() -> Iterator[Case]:
    g = "sweep run"
    store = ["--store", "s.sqlite", "--quiet"]
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"spec={label}", ["sweep", "run", value, *store], setup)
    for label, content in [("empty-content", ""), ("binary-content", GARBAGE),
                           ("non-utf8-content", NON_UTF8), ("deep-nesting", DEEP_TOML),
                           ("run-file", runfile_text()), ("no-axes-no-trace", "[sweep]\n"),
                           ("eval-in-constraint", SWEEP.replace(
                               '"rows * cols <= 256"', '"__import__(\'os\').system(\'x\')"')),
                           ("huge-product", SWEEP.replace(
                               "rows = [8, 16]", "rows = {start = 1, stop = 999999, step = 1}"
                           ).replace("cols = [8, 16]", "cols = {start = 1, stop = 99, step = 1}")),
                           ("power-tower", SWEEP.replace(
                               '"rows * cols <= 256"', '"((rows ** 64) ** 64) ** 64 > 1"')),
                           ("refused-combination", SWEEP.replace(
                               'input = "fp32"', 'input = "fp32"\nblock_accumulator = '
                               '"fixed16"'))]:
        yield cli(g, f"spec={label}", ["sweep", "run", "s.toml", *store], sweep_setup(content))
    yield cli(g, "legal", ["sweep", "run", "s.toml", *store], sweep_setup(),
              expect=sweep_ok("12 computed", files=["s.sqlite"]), timeout=120)
    yield cli(g, "resume", ["sweep", "run", "s.toml", *store],
              sweep_setup(SWEEP, empty_store()), expect=sweep_ok("12 computed"), timeout=120)
    for label, value, setup in [("folder", "adir", mkdir("adir")), ("fifo", "fifo", fifo()),
                                ("the-spec", "s.toml", None), ("empty-string", "", None),
                                ("garbage-file", "g.bin", write("g.bin", GARBAGE)),
                                ("parent-is-a-file", "afile/s.sqlite", write("afile", "x\n")),
                                ("missing-parent", "no/such/s.sqlite", None),
                                ("dev-null", "/dev/null", None),
                                ("other-sqlite", "o.sqlite", sqlite_file("o.sqlite"))]:
        yield cli(g, f"store={label}", ["sweep", "run", "s.toml", "--store", value, "--quiet"],
                  steps(sweep_setup(), setup) if setup else sweep_setup())
    for label, value in [("udp", "udp://127.0.0.1:1"), ("empty", ""), ("word", "cluster"),
                         ("non-utf8", NON_UTF8_ARG)]:
        yield cli(g, f"scheduler={label}", ["sweep", "run", "s.toml", *store, "--scheduler",
                                            value], sweep_setup())
    for label, value in [("zero", "0"), ("negative", "-1"), ("huge", HUGE), ("word", "two"),
                         ("2000", "2000")]:
        yield cli(g, f"workers={label}", ["sweep", "run", "s.toml", *store, "--workers", value],
                  sweep_setup())
        yield cli(g, f"batch={label}", ["sweep", "run", "s.toml", *store, "--batch", value],
                  sweep_setup(), **({"expect": sweep_ok("12 computed"), "timeout": 120}
                                    if label == "2000" else {}))
    for flag in ("--gemm-rows", "--no-gemm-rows"):
        yield cli(g, f"{flag[2:]}=twice", ["sweep", "run", "s.toml", *store, flag, flag],
                  sweep_setup(),
                  expect=sweep_ok("12 computed"), timeout=120)
        yield cli(g, f"{flag[2:]}=with-a-value", ["sweep", "run", "s.toml", *store,
                                                  f"{flag}=yes"], sweep_setup())
    g = "sweep status"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"store={label}", ["sweep", "status", "--store", value], setup)
    yield cli(g, "store=empty-store", ["sweep", "status", "--store", "s.sqlite"],
              empty_store(), expect=ok("GEMM rows"))
    yield cli(g, "store=other-sqlite", ["sweep", "status", "--store", "o.sqlite"],
              sqlite_file("o.sqlite"))
    g = "sweep export"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"store={label}", ["sweep", "export", "--store", value, "--out", "x.csv"],
                  setup)
    for label, value, setup, expect, refusal in output_files(".csv"):
        if expect != "error":
            expect = ok("wrote", files=[value] if label != "fifo" else [])
        yield cli(g, f"out={label}", ["sweep", "export", "--store", "s.sqlite", "--out", value],
                  steps(empty_store(), setup) if setup else empty_store(), expect=expect,
                  refusal_ok=refusal)
    for label, value in [("txt", "x.txt"), ("no-suffix", "x"), ("the-store", "s.sqlite")]:
        yield cli(g, f"out={label}", ["sweep", "export", "--store", "s.sqlite", "--out", value],
                  empty_store())


# --- training: `hbfpsim train RUN.toml` ---------------------------------------------------------

TRAIN = """[train]
task = "digits"
variants = ["fp32"]
seeds = [0]
epochs = 1
out = "tout"
"""


def train_command() -> Iterator[Case]:
    g = "train"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"runfile={label}", ["train", value, "--quiet"], setup)
    bad = {"empty-content": "", "binary-content": GARBAGE, "non-utf8-content": NON_UTF8,
           "deep-nesting": DEEP_TOML, "run-file": runfile_text(), "no-train": "[other]\n",
           "task": TRAIN.replace('"digits"', '"vision"'),
           "variant": TRAIN.replace('["fp32"]', '["hbfp3x"]'),
           "variants-empty": TRAIN.replace('["fp32"]', "[]"),
           "epochs-huge": TRAIN.replace("epochs = 1", "epochs = 10001"),
           "epochs-2^63": TRAIN.replace("epochs = 1", f"epochs = {HUGE}"),
           "seeds-negative": TRAIN.replace("[0]", "[-1]"),
           "seeds-many": TRAIN.replace("[0]", str(list(range(101)))),
           "lr-nan": TRAIN + "lr = nan\n", "lr-inf": TRAIN + "lr = inf\n",
           "lr-zero": TRAIN + "lr = 0\n", "batch-zero": TRAIN + "batch = 0\n",
           "batch-huge": TRAIN + "batch = 100000\n",
           "text-key-on-digits": TRAIN + "context = 8\n",
           "text-width-heads": TRAIN.replace('"digits"', '"text"') + "width = 66\n",
           "text-bytes-huge": TRAIN.replace('"digits"', '"text"') + f"text_bytes = {HUGE}\n",
           "storage": TRAIN + 'storage = "hbfp99"\n',
           "exact-key": TRAIN + "exact = {when = 1}\n",
           "exact-phase": TRAIN + 'exact = {phases = ["sideways"]}\n',
           "capture-seed": TRAIN + '[train.capture]\nseed = 7\npath = "t"\n',
           "capture-epoch": TRAIN + '[train.capture]\nepochs = [5]\npath = "t"\n',
           "capture-no-path": TRAIN + "[train.capture]\nseed = 0\n",
           "capture-onto-runfile": TRAIN + '[train.capture]\npath = "t.toml"\n',
           "capture-no-layer": TRAIN + '[train.capture]\npath = "tr"\nlayers = ["nope*"]\n',
           "unknown-key": TRAIN + "speed = 3\n",
           "variant-table-bad": TRAIN + '[[variant]]\nname = "x"\ninput = "nope"\n'}
    for label, content in bad.items():
        yield cli(g, f"content={label}", ["train", "t.toml", "--quiet"], write("t.toml", content))
    for label, value, setup in [("empty-string", "", None), ("dot", ".", None),
                                ("dotdot", "..", None),
                                ("existing-file", "afile", write("afile", "keep\n")),
                                ("folder-of-other-files", "adir", mkdir("adir")),
                                ("parent-is-a-file", "afile/sub", write("afile", "keep\n")),
                                ("the-runfile", "t.toml", None), ("fifo", "fifo", fifo()),
                                ("dev-null", "/dev/null", None), ("long-name", LONG_NAME, None)]:
        yield cli(g, f"out={label}", ["train", "t.toml", "--out", value, "--quiet"],
                  steps(write("t.toml", TRAIN), setup) if setup else write("t.toml", TRAIN))
    for label, value in [("3d", "3d"), ("empty", ""), ("upper", "1D")]:
        yield cli(g, f"landscape={label}", ["train", "t.toml", "--landscape", value, "--quiet"],
                  write("t.toml", TRAIN))
    yield cli(g, "legal", ["train", "t.toml", "--quiet", "--landscape", "1d"],
              write("t.toml", TRAIN),
              expect=ok("1 runs in", files=["tout/results.csv", "tout/curves.png",
                                            "tout/landscape_1d.png"]), timeout=180)


def sqlite_file(name: str) -> Callable[[Path], None]:
    """An SQLite database that is not a sweep store."""
    def fn(work: Path) -> None:
        import sqlite3
        with sqlite3.connect(work / name) as db:
            db.execute("CREATE TABLE t (x)")
        db.close()
    return fn


def advise_command() -> Iterator[Case]:
    g = "advise"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"trace={label}", ["advise", value], setup)
    for label, value, setup in INPUT_PATHS:
        if label in ("very-long", "dash"):
            continue
        yield cli(g, f"array={label}", ["advise", "tiny", "--array", value],
                  steps(tiny_trace(), setup) if setup else tiny_trace())
    yield cli(g, "array=preset", ["advise", "tiny", "--array", "tpu128"], tiny_trace(),
              expect=ok("tiny on tpu128"))
    yield cli(g, "array=os-dataflow", ["advise", "tiny", "--array", "a.toml"],
              steps(tiny_trace(), write("a.toml", config_text({("array", "dataflow"): '"os"'}))),
              expect=ok("tiny on a"))
    for option in ("--max-lost", "--probability"):
        for label, value in FLOAT_WORDS:
            if option == "--max-lost" and label in ("inf", "1e400", "2^63"):
                # any loss allowed: a clean refusal or the narrowest accumulators both fit
                yield cli(g, f"max-lost={label}", ["advise", "tiny", option, value],
                          tiny_trace(), expect=ok("bits", allow_inf=True), refusal_ok=True)
                continue
            yield cli(g, f"{option[2:]}={label}", ["advise", "tiny", option, value], tiny_trace())
    for label, value in (("zero", "0"), ("minus-zero", "-0.0"), ("1e-400", "1e-400")):
        yield cli(g, f"max-lost={label}", ["advise", "tiny", "--max-lost", value], tiny_trace())
    for label, value in (("1e-300", "1e-300"), ("1e300", "1e300")):
        yield cli(g, f"max-lost={label}", ["advise", "tiny", "--max-lost", value], tiny_trace(),
                  expect=ok("bits"), refusal_ok=True)
    yield cli(g, "probability=one", ["advise", "tiny", "--probability", "1"], tiny_trace())
    for label, value in (("zero", "0"), ("minus-zero", "-0.0"), ("1e-400", "1e-400"),
                         ("1e-300", "1e-300"), ("almost-one", "0.999999")):
        yield cli(g, f"probability={label}", ["advise", "tiny", "--probability", value],
                  tiny_trace(), expect=ok("bits"), refusal_ok=True)
    yield cli(g, "data=nan", ["advise", "tiny"], tiny_trace(fill=float("nan")),
              expect=ok("bits"), refusal_ok=True)
    yield cli(g, "data=zeros", ["advise", "tiny"], tiny_trace(fill=0.0), expect=ok("bits"))
    yield cli(g, "data=shape-only", ["advise", "shape"], shape_only(), expect=ok("bits"))
    yield cli(g, "data=no-records", ["advise", "tiny"], tiny_trace(records=[]), expect=ok(),
              refusal_ok=True)
    yield cli(g, "data=k=1", ["advise", "tiny"], tiny_trace(records=[
        rec(id=0, step=0, epoch=0, layer="a", phase="fwd", m=8, n=8, k=1)]), expect=ok("bits"))
    yield cli(g, "data=k=2^40", ["advise", "shape", "--no-check"], tiny_trace("shape", [
        rec(id=0, step=0, epoch=0, layer="a", phase="fwd", m=1, n=1, k=2**40)], operands=False),
        expect=ok("bits"), refusal_ok=True)


def signal_cases() -> Iterator[Case]:
    """Ctrl-C (SIGINT to the group) and SIGTERM mid-work: status 130 / 143, one line, and
    nothing left behind."""
    g = "signals"
    resnet = runfile_text({"traces": f'["{TRACES / "resnet50_step"}"]', "arrays": '["array32"]',
                           "synthetic": '"gaussian"', "max_outputs": "4096"},
                          variants=[{"name": '"fp32"', "input": '"fp32"'},
                                    {"name": '"fp8"', "input": '"fp8_e4m3"',
                                     "accumulator": '"fp16"'}])
    for sig in (signal.SIGTERM, signal.SIGINT):
        name = signal.Signals(sig).name
        yield cli(g, f"run {name}", ["run", "r.toml", "--quiet"], write("r.toml", resnet),
                  signal=(sig, 5.0), timeout=60)
        yield cli(g, f"capture {name}", ["capture", "cnn-digits", "--out", "t", "--epochs", "30"],
                  signal=(sig, 8.0), timeout=60)
    yield cli(g, "calibrate SIGINT", ["cost", "calibrate", "--out", "f.json"],
              signal=(signal.SIGINT, 4.0), timeout=60)
    yield cli(g, "gemm-simpy SIGTERM", ["gemm", "array32", "1", "32768", "32768", "--engine",
                                        "simpy"], signal=(signal.SIGTERM, 4.0), timeout=60)
    yield cli(g, "advise SIGTERM", ["advise", str(TRACES / "cnn_digits")],
              signal=(signal.SIGTERM, 1.0), timeout=60)   # advise takes about 2 s on 2 cores
    long_epoch = TRAIN.replace('"digits"', '"text"') + "steps_per_epoch = 100000\n"
    for sig in (signal.SIGTERM, signal.SIGINT):
        yield cli(g, f"train {signal.Signals(sig).name}", ["train", "t.toml", "--quiet"],
                  write("t.toml", long_epoch), signal=(sig, 12.0), timeout=90)
    endless = GOOD_SCRIPT.replace("range(3)", "range(10**9)")
    yield cli(g, "capture-script SIGTERM", ["capture", "s.py", "--out", "t", "--steps", "0,1"],
              write("s.py", endless), signal=(signal.SIGTERM, 8.0), timeout=60)


# --- the public API -----------------------------------------------------------------------------

def _quantize(make: Callable, fmt: Any = "hbfp4", **kw) -> Callable[[Path], Any]:
    def call(_work):
        import numpy as np

        from hbfpsim import quantize
        return quantize(make(np), fmt, **kw)
    return call


def api_quantize() -> Iterator[Case]:
    g = "quantize"
    bad_x = [("nan", lambda np: np.array([1.0, np.nan])), ("inf", lambda np: np.array([np.inf])),
             ("-inf", lambda np: np.full((2, 64), -np.inf, np.float32)),
             ("object", lambda np: np.array([1, "a"], dtype=object)),
             ("complex", lambda np: np.array([1 + 2j])), ("string", lambda np: "abc"),
             ("none", lambda np: None), ("ragged", lambda np: [[1.0, 2.0], [3.0]]),
             ("datetime", lambda np: np.array(["2024-01-01"], dtype="datetime64[D]")),
             ("bytes", lambda np: b"abc"), ("python-int-2^70", lambda np: [2**70]),
             ("dict", lambda np: {"a": 1.0}), ("structured", lambda np: np.zeros(3, "f4,f4"))]
    for label, make in bad_x:
        yield api(g, f"x={label}", _quantize(make), f"quantize(<{label}>, 'hbfp4')")
    legal_x = [("empty-1d", lambda np: np.zeros(0, np.float32), finite((0,), "float32")),
               ("empty-rows", lambda np: np.zeros((0, 64), np.float32), finite((0, 64))),
               ("empty-axis", lambda np: np.zeros((3, 0), np.float32), finite((3, 0))),
               ("0-d", lambda np: np.float32(1.5), finite((), "float32")),
               ("3-d", lambda np: np.ones((2, 3, 64), np.float32), finite((2, 3, 64))),
               ("float16", lambda np: np.ones(64, np.float16), finite((64,), "float32")),
               ("bool", lambda np: np.ones(64, bool), finite((64,), "float64")),
               ("int64-2^62", lambda np: np.full(64, 2**62, np.int64), finite((64,))),
               ("uint64-max", lambda np: np.full(64, 2**64 - 1, np.uint64), finite((64,))),
               ("float64-1e308", lambda np: np.full(64, 1e308), finite((64,))),
               ("float64-1e-320", lambda np: np.full(64, 1e-320), finite((64,))),
               ("float32-max", lambda np: np.full(64, np.finfo(np.float32).max, np.float32),
                finite((64,))),
               ("python-list", lambda np: [0.3, -1.2, 2.5], finite((3,), "float64"))]
    for label, make, check in legal_x:
        yield api(g, f"x={label}", _quantize(make), f"quantize(<{label}>, 'hbfp4')",
                  expect=check)
    for fmt in ("hbfp4", "mxfp4", "int8", "fp8_e4m3"):
        yield api(g, f"strided-view {fmt}", lambda _w, fmt=fmt: _layouts(fmt, "strided"),
                  f"quantize(x[:, ::2], {fmt!r}) == quantize(copy)", expect=same_pair)
        yield api(g, f"fortran-order {fmt}", lambda _w, fmt=fmt: _layouts(fmt, "fortran"),
                  f"quantize(asfortranarray(x), {fmt!r}) == quantize(x)", expect=same_pair)
        yield api(g, f"big-endian {fmt}", lambda _w, fmt=fmt: _layouts(fmt, "big-endian"),
                  f"quantize(x.astype('>f4'), {fmt!r}) == quantize(x)", expect=same_pair)
    yield api(g, "read-only", lambda _w: _layouts("hbfp4", "read-only"),
              "quantize(read-only x) == quantize(x)", expect=same_pair)
    ones = lambda np: np.ones(64, np.float32)
    for label, axis in (("float", 1.0), ("bool", True), ("string", "0"), ("none", None),
                        ("out-of-range", 1), ("negative-out-of-range", -2), ("2^63", 2**63)):
        yield api(g, f"axis={label}", _quantize(ones, axis=axis),
                  f"quantize(ones(64), 'hbfp4', axis={axis!r})")
    yield api(g, "axis=numpy-int", lambda w: _quantize(ones, axis=__import__("numpy").int64(0))(w),
              "quantize(ones(64), 'hbfp4', axis=np.int64(0))", expect=finite((64,)))
    for label, kw in (("empty", {"rounding": ""}), ("none", {"rounding": None}),
                      ("int", {"rounding": 3}), ("unknown", {"rounding": "nearest"}),
                      ("stochastic-no-seed", {"rounding": "stochastic"}),
                      ("seed=-1", {"rounding": "stochastic", "seed": -1}),
                      ("seed=2^63", {"rounding": "stochastic", "seed": 2**63}),
                      ("seed=true", {"rounding": "stochastic", "seed": True}),
                      ("seed=1.5", {"rounding": "stochastic", "seed": 1.5}),
                      ("seed=string", {"rounding": "stochastic", "seed": "1"}),
                      ("nonfinite-empty", {"nonfinite": ""}),
                      ("nonfinite-none", {"nonfinite": None}),
                      ("nonfinite-upper", {"nonfinite": "PROPAGATE"}),
                      ("option-compat", {"compat": "x"}), ("option-unknown", {"bogus": 1}),
                      ("option-saturate-on-hbfp", {"saturate": True})):
        yield api(g, f"rounding {label}", _quantize(ones, **kw),
                  f"quantize(ones(64), 'hbfp4', **{kw!r})")
    for label, kw in (("upper-case", {"rounding": "EVEN"}), ("padded", {"rounding": " rne "}),
                      ("seed=int64-max", {"rounding": "stochastic", "seed": 2**63 - 1})):
        yield api(g, f"rounding {label}", _quantize(ones, **kw),
                  f"quantize(ones(64), 'hbfp4', **{kw!r})", expect=finite((64,)))
    yield api(g, "rounding seed=uint64-max", lambda w: _quantize(
        ones, rounding="stochastic", seed=__import__("numpy").uint64(2**64 - 1))(w),
        "quantize(ones(64), 'hbfp4', rounding='stochastic', seed=np.uint64(2**64-1))")
    yield api(g, "propagate int8", _quantize(lambda np: np.array([np.nan, 1.0]), "int8",
                                             nonfinite="propagate"),
              "quantize([nan, 1], 'int8', nonfinite='propagate')")
    yield api(g, "propagate hbfp4", _quantize(lambda np: np.array([np.nan, 1.0]),
                                              nonfinite="propagate"),
              "quantize([nan, 1], 'hbfp4', nonfinite='propagate')",
              expect=lambda q: bool(__import__("numpy").isnan(q).all()))
    for label, kw in (("per", {"per": "row"}), ("saturate", {"saturate": "yes"})):
        fmt = "int8" if label == "per" else "fp8_e4m3"
        yield api(g, f"option {label}", _quantize(ones, fmt, **kw),
                  f"quantize(ones(64), {fmt!r}, **{kw!r})")
    for label, fmt in (("none", None), ("int", 4), ("empty", ""), ("bytes", b"hbfp4"),
                       ("list", ["hbfp4"])):
        yield api(g, f"format={label}", _quantize(ones, fmt), f"quantize(ones(64), {fmt!r})")
    yield api(g, "format=object-with-options", lambda w: _quantize(
        ones, _get("hbfp4"), compat="hbfpemulator")(w),
        "quantize(ones(64), formats.get('hbfp4'), compat='hbfpemulator')")
    yield api(g, "format=object", lambda w: _quantize(ones, _get("mxfp4"))(w),
              "quantize(ones(64), formats.get('mxfp4'))", expect=finite((64,)))
    yield api(g, "decode-foreign", lambda _w: _get("hbfp4").decode(_get("mxfp4").encode(
        __import__("numpy").ones(64))), "get('hbfp4').decode(get('mxfp4').encode(ones(64)))")


def _get(name: str, **options):
    from hbfpsim import formats
    return formats.get(name, **options)


def _layouts(fmt: str, how: str):
    """(quantize of a hostile layout of x, quantize of a plain C-ordered float32 copy)."""
    import numpy as np

    from hbfpsim import quantize
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 256)).astype(np.float32)
    if how == "strided":
        x = base[:, ::2]
    elif how == "fortran":
        x = np.asfortranarray(base)
    elif how == "big-endian":
        x = base.astype(">f4")
    else:
        x = base.copy()
        x.setflags(write=False)
    return quantize(x, fmt), quantize(np.ascontiguousarray(x, dtype=np.float32), fmt)


def api_formats_get() -> Iterator[Case]:
    g = "formats.get"
    bad = ["", " ", "fp7", "hbfp0", "hbfp1", "hbfp25", "hbfp4@0", "hbfp4@-1", "hbfp4@1048577",
           "hbfp4@", "hbfp4@@64", "hbfp4@64@64", "hbfp" + "9" * 5000, "hbfp\u0664", "mxfp4@32",
           "int8@64", "fp32\x00", "x" * 100000, None, 4, b"hbfp4", ["hbfp4"], 4.0]
    for name in bad:
        yield api(g, f"name={short(name, 24)}", lambda _w, name=name: _get(name),
                  f"formats.get({short(name, 40)!r})")
    for name, word in (("HBFP4", "hbfp4@64"), ("hbfp2@1", "hbfp2@1"),
                       ("hbfp24@1048576", "hbfp24@1048576"), (" mxfp4 ", "mxfp4")):
        yield api(g, f"name={short(name)}", lambda _w, name=name: _get(name).name,
                  f"formats.get({name!r}).name", expect=lambda v, word=word: v == word)
    for label, options in (("compat-bad", {"compat": "x"}), ("per-bad", {"per": "row"}),
                           ("saturate-bad", {"saturate": 1}), ("unknown", {"bogus": True})):
        fmt = {"per-bad": "int8", "saturate-bad": "fp8_e4m3"}.get(label, "hbfp4")
        yield api(g, f"options={label}", lambda _w, fmt=fmt, options=options: _get(fmt, **options),
                  f"formats.get({fmt!r}, **{options!r})")


def _acc(spec):
    from hbfpsim.mac import parse_accumulator
    return parse_accumulator(spec)


def api_accumulators() -> Iterator[Case]:
    g = "parse_accumulator"
    bad = ["", ":", "fixed", "fixed7", "fixed65", "fixed0", "fixed-16", "fixed16:", "fixed16::",
           "fixed16:sat:sat", "fixed16:sat:wrap", "fixed16:rne", "e1m1", "e12m1", "e2m0",
           "e11m53", "fp32:sat:inf", "fp32:foo", "fixed\u0661\u0666", "e\uff15m10",
           "fixed" + "9" * 5000, None, 16, b"fixed16", ["fixed16"]]
    for spec in bad:
        yield api(g, f"spec={short(spec, 24)}", lambda _w, spec=spec: _acc(spec),
                  f"parse_accumulator({short(spec, 40)!r})")
    for spec, shown in (("fixed8", "fixed8"), ("fixed64", "fixed64"), ("e2m1", "e2m1"),
                        ("e11m52", "e11m52"), ("BF16:RTZ:FTZ:SAT", "bf16:rtz:ftz:sat"),
                        ("fixed16:wrap", "fixed16:wrap"), (" e5m10 : rtz ", "fp16:rtz")):
        yield api(g, f"spec={short(spec)}", lambda _w, spec=spec: str(_acc(spec)),
                  f"str(parse_accumulator({spec!r}))", expect=lambda v, shown=shown: v == shown)

    def fixed(*args, **kw):
        from hbfpsim.mac import FixedAccumulator
        return FixedAccumulator(*args, **kw)

    def floating(*args, **kw):
        from hbfpsim.mac import FloatAccumulator
        return FloatAccumulator(*args, **kw)

    for label, make in (("Fixed(16.0)", lambda: fixed(16.0)), ("Fixed(True)", lambda: fixed(True)),
                        ("Fixed(2^70)", lambda: fixed(2**70)),
                        ("Float(True, 5)", lambda: floating(True, 5)),
                        ("Float(8, 23, rounding='x')", lambda: floating(8, 23, rounding="x")),
                        ("Float(8.0, 23)", lambda: floating(8.0, 23))):
        yield api(g, label, lambda _w, make=make: make(), label)

    def plan(text):
        from hbfpsim.mac import as_plan
        return as_plan(text)

    for label, value in (("empty", ""), ("gt", ">"), ("dangling-gt", "fp32 >"),
                         ("chunk-0", "fp32*0 > fp32"), ("chunk-negative", "fp32*-1 > fp32"),
                         ("chunk-float", "fp32*1.5 > fp32"), ("last-has-chunk", "fp32*64"),
                         ("fixed-after-float", "fp32*4 > fixed16"),
                         ("chunk-unicode-digit", "fp32*\u0663 > fp32"),
                         ("none", None), ("int", 5), ("dict", {"a": 1}), ("empty-list", []),
                         ("list-last-chunk", [(64, "fixed16")]),
                         ("list-bool-chunk", [(True, "fixed16"), (None, "fp32")]),
                         ("list-float-chunk", [(1.5, "fp32"), (None, "fp32")]),
                         ("list-string-chunk", [("64", "fp32"), (None, "fp32")]),
                         ("list-zero-chunk", [(0, "fp32"), (None, "fp32")]),
                         ("list-negative-chunk", [(-1, "fp32"), (None, "fp32")]),
                         ("list-triple", [(64, "fixed16", 1), (None, "fp32")])):
        yield api(g, f"plan={label}", lambda _w, value=value: plan(value),
                  f"as_plan({short(value, 60)!r})")


def _mm(make_a: Callable, make_b: Callable, fmt: Any = "hbfp4", *args, **kw) -> Callable:
    def call(_work):
        import numpy as np

        from hbfpsim import matmul
        return matmul(make_a(np), make_b(np), fmt, *args, **kw)
    return call


def api_matmul() -> Iterator[Case]:
    g = "matmul"
    a64 = lambda np: np.random.default_rng(2).standard_normal((4, 64)).astype(np.float32)
    b64 = lambda np: np.random.default_rng(3).standard_normal((64, 5)).astype(np.float32)
    bad_operands = [("inner-mismatch", a64, lambda np: np.ones((63, 5), np.float32)),
                    ("A-1d", lambda np: np.ones(64, np.float32), b64),
                    ("A-3d", lambda np: np.ones((2, 4, 64), np.float32), b64),
                    ("A-0d", lambda np: np.float32(1), b64),
                    ("A-object", lambda np: np.ones((4, 64), object), b64),
                    ("A-complex", lambda np: np.ones((4, 64), complex), b64),
                    ("A-string", lambda np: np.full((4, 64), "a"), b64),
                    ("A-none", lambda np: None, b64),
                    ("A-nan", lambda np: np.full((4, 64), np.nan, np.float32), b64),
                    ("B-inf", a64, lambda np: np.full((64, 5), np.inf, np.float32)),
                    ("A-ragged", lambda np: [[1.0, 2.0], [3.0]], b64)]
    for label, make_a, make_b in bad_operands:
        yield api(g, label, _mm(make_a, make_b), f"matmul(<{label}>, 'hbfp4')")
    zeros = lambda shape: (lambda np: np.zeros(shape, np.float32))
    ones = lambda shape: (lambda np: np.ones(shape, np.float32))
    legal = [("empty-M", zeros((0, 64)), b64, (0, 5)),
             ("K=0", zeros((4, 0)), zeros((0, 5)), (4, 5)),
             ("1x1x1", ones((1, 1)), ones((1, 1)), (1, 1)),
             ("float16", lambda np: np.ones((4, 64), np.float16), b64, (4, 5)),
             ("bool", lambda np: np.ones((4, 64), bool), b64, (4, 5)),
             ("int64-2^62", lambda np: np.full((4, 64), 2**62, np.int64), b64, (4, 5)),
             ("zeros", lambda np: np.zeros((4, 64), np.float32), b64, (4, 5))]
    for label, make_a, make_b, shape in legal:
        yield api(g, label, _mm(make_a, make_b), f"matmul(<{label}>, 'hbfp4')",
                  expect=mm_finite(shape))
    yield api(g, "int8-all-zero", _mm(lambda np: np.zeros((4, 64)), b64, "int8"),
              "matmul(zeros, B, 'int8')", expect=mm_finite((4, 5)))
    yield api(g, "fp32-overflow", _mm(lambda np: np.full((2, 64), 3e38, np.float32),
                                      lambda np: np.full((64, 2), 3e38, np.float32), "fp32"),
              "matmul(3e38s, 3e38s, 'fp32'): Inf, counted as overflows",
              expect=lambda r: r[1].levels[0].overflows > 0)
    for label, how in (("strided", "strided"), ("fortran", "fortran"),
                       ("big-endian", "big-endian")):
        yield api(g, f"layout={label}", lambda _w, how=how: _mm_layouts(how),
                  f"matmul(<{how} A>, B) == matmul(copy, B)", expect=same_pair)
    for label, fmt_b in (("int", 7), ("unknown", "nope"), ("none-a", None)):
        if label == "none-a":
            yield api(g, "fmt_a=None", _mm(a64, b64, None), "matmul(A, B, None)")
        else:
            yield api(g, f"fmt_b={label}", _mm(a64, b64, "hbfp4", fmt_b),
                      f"matmul(A, B, 'hbfp4', {fmt_b!r})")
    plans = [("empty", ""), ("gt", ">"), ("chunk-0", "fp32*0 > fp32"),
             ("last-has-chunk", "fp32*64"),
             ("fixed-after-float", "fp32*4 > fixed16"), ("none", None), ("int", 5),
             ("list-last-chunk", [(64, "fixed16")]),
             ("list-numpy-chunk", "numpy"), ("fixed-for-fp32", "fixed16*64 > fp32 fp32")]
    for label, value in plans:
        if value == "numpy":
            call = (lambda w: _mm(a64, b64, "hbfp4", plan=[(__import__("numpy").int64(64),
                                                              "fixed16"), (None, "fp32")])(w))
            yield api(g, f"plan={label}", call, "matmul(A, B, 'hbfp4', plan=[(np.int64(64), "
                      "'fixed16'), (None, 'fp32')])", expect=mm_finite((4, 5)), refusal_ok=True)
        elif label == "fixed-for-fp32":
            yield api(g, f"plan={label}", _mm(a64, b64, "fp32", plan="fixed16*64 > fp32"),
                      "matmul(A, B, 'fp32', plan='fixed16*64 > fp32')")
        else:
            yield api(g, f"plan={label}", _mm(a64, b64, plan=value),
                      f"matmul(A, B, 'hbfp4', plan={value!r})")
    yield api(g, "plan=straddles-blocks", _mm(lambda np: np.ones((4, 128), np.float32),
                                              lambda np: np.ones((128, 5), np.float32),
                                              plan="fixed16*3 > fp32"),
              "matmul(ones(4, 128), ones(128, 5), 'hbfp4', plan='fixed16*3 > fp32')")
    yield api(g, "plan=huge-chunk", _mm(a64, b64, plan="fp32*" + "9" * 30 + " > fp32"),
              "matmul(A, B, 'hbfp4', plan='fp32*999...(30 digits) > fp32')",
              expect=mm_finite((4, 5)), refusal_ok=True)      # chunks are bounded: 2^40
    for label, kw in (("stochastic-no-seed", {"operand_rounding": "stochastic"}),
                      ("seed=-1", {"operand_rounding": "stochastic", "seed": -1}),
                      ("seed=true", {"operand_rounding": "stochastic", "seed": True}),
                      ("seed=2^63", {"operand_rounding": "stochastic", "seed": 2**63}),
                      ("acc-stochastic-no-seed", {"plan": "fp16:stochastic"}),
                      ("stats=unknown", {"stats": "x"}), ("stats=none", {"stats": None}),
                      ("operand_rounding=unknown", {"operand_rounding": "x"})):
        yield api(g, label, _mm(a64, b64, **kw), f"matmul(A, B, 'hbfp4', **{kw!r})")
    yield api(g, "seed=float-unused", _mm(a64, b64, seed=1.5), "matmul(A, B, 'hbfp4', seed=1.5)",
              expect=mm_finite((4, 5)), refusal_ok=True)
    yield api(g, "stats=element", _mm(a64, b64, stats="element"),
              "matmul(A, B, 'hbfp4', stats='element')", expect=mm_finite((4, 5)))


def _mm_layouts(how: str):
    import numpy as np

    from hbfpsim import matmul
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 256)).astype(np.float32)
    b = rng.standard_normal((128, 3)).astype(np.float32)
    if how == "strided":
        x = a[:, ::2]
    elif how == "fortran":
        x = np.asfortranarray(a[:, :128])
    else:
        x = a[:, :128].astype(">f4")
    return (matmul(x, b, "hbfp4", plan="fixed16*64 > fp32").out,
            matmul(np.ascontiguousarray(x, np.float32), b, "hbfp4", plan="fixed16*64 > fp32").out)


def api_array() -> Iterator[Case]:
    g = "array"

    def load(*args, **kw):
        from hbfpsim.array import load
        return load(*args, **kw)

    def simulate(*args, config="array32", **kw):
        from hbfpsim.array import load, simulate
        return simulate(load(config) if isinstance(config, str) else config, *args, **kw)

    for label, spec in (("none", None), ("int", 5), ("empty", ""), ("unknown", "nope"),
                        ("bytes", b"array32"), ("list", ["array32"])):
        yield api(g, f"load({label})", lambda _w, spec=spec: load(spec), f"array.load({spec!r})")
    yield api(g, "load(fifo)", lambda _w: load("fifo"), "array.load('fifo')", fifo())
    yield api(g, "load(folder)", lambda _w: load("adir"), "array.load('adir')", mkdir("adir"))
    yield api(g, "load(base=int)", lambda _w: load("array32", base=5),
              "array.load('array32', base=5)")
    yield api(g, "load(nul)", lambda _w: load("a\x00b"), "array.load('a\\x00b')")
    yield api(g, "load(preset)", lambda _w: load("array32").rows, "array.load('array32').rows",
              expect=lambda v: v == 32)
    for label, dims in (("zero", (0, 8, 8)), ("negative", (8, -1, 8)), ("bool", (True, 8, 8)),
                        ("float", (8, 8, 1.5)), ("float-integral", (8.0, 8, 8)),
                        ("string", ("8", 8, 8)), ("none", (None, 8, 8)),
                        ("nan", (float("nan"), 8, 8)), ("2^40+1", (2**40 + 1, 8, 8)),
                        ("2^63", (2**63, 8, 8)), ("2^100", (8, 8, 2**100))):
        yield api(g, f"simulate(dims={label})", lambda _w, dims=dims: simulate(*dims),
                  f"simulate(array32, *{dims!r})")
    yield api(g, "simulate(numpy-ints)", lambda _w: simulate(
        *(__import__("numpy").int64(8),) * 3).total_cycles,
        "simulate(array32, np.int64(8), np.int64(8), np.int64(8))",
        expect=lambda v: isinstance(v, int) and v > 0)
    yield api(g, "simulate(2^40)", lambda _w: simulate(2**40, 8, 8).total_cycles,
              "simulate(array32, 2**40, 8, 8)", expect=lambda v: v > 2**40, refusal_ok=True)
    for label, engine in (("unknown", "x"), ("none", None), ("upper-case", "FAST")):
        yield api(g, f"simulate(engine={label})", lambda _w, engine=engine: simulate(
            8, 8, 8, engine=engine), f"simulate(array32, 8, 8, 8, engine={engine!r})")
    yield api(g, "simulate(config=None)", lambda _w: simulate(8, 8, 8, config=None),
              "simulate(None, 8, 8, 8)")

    def simulate_named():
        from hbfpsim.array import simulate
        return simulate("array32", 8, 8, 8)

    yield api(g, "simulate(config=string)", lambda _w: simulate_named(),
              "simulate('array32', 8, 8, 8)")

    def config(**kw):
        from hbfpsim.config import ArrayConfig
        return ArrayConfig(**{"rows": 4, "cols": 4, "dataflow": "ws", **kw})

    for label, kw in (("rows=0", {"rows": 0}), ("rows=true", {"rows": True}),
                      ("rows=4.0", {"rows": 4.0}), ("dataflow=WS", {"dataflow": "WS"}),
                      ("dram=nan", {"dram_bytes_per_cycle": float("nan")}),
                      ("dram=-inf", {"dram_bytes_per_cycle": float("-inf")}),
                      ("input_kib=inf", {"input_kib": float("inf")}),
                      ("clock=-inf", {"clock_ghz": float("-inf")}),
                      ("input=empty", {"input": ""}), ("block_accumulator=empty",
                                                       {"block_accumulator": ""}),
                      ("double_buffered=1", {"double_buffered": 1})):
        yield api(g, f"ArrayConfig({label})", lambda _w, kw=kw: config(**kw),
                  f"ArrayConfig(rows=4, cols=4, dataflow='ws', **{kw!r})")
    yield api(g, "ArrayConfig(ideal)", lambda _w: simulate(5, 6, 7, config=config()).total_cycles,
              "simulate(ArrayConfig(4, 4, 'ws'), 5, 6, 7)", expect=lambda v: v == 60)
    yield api(g, "ArrayConfig(1x1 os)", lambda _w: simulate(
        3, 3, 3, config=config(rows=1, cols=1, dataflow="os")).total_cycles,
        "simulate(ArrayConfig(1, 1, 'os'), 3, 3, 3)", expect=lambda v: v > 0)

    def from_dict(data):
        from hbfpsim.config import from_dict
        return from_dict(data)

    good = {"array": {"rows": 4, "cols": 4, "dataflow": "ws"},
            "buffers": {"input_kib": 64, "weight_kib": 64, "output_kib": 64},
            "dram": {"bytes_per_cycle": 8}}
    def deep_rows():
        deep: list = []
        inner = deep
        for _ in range(100000):
            inner.append([])
            inner = inner[0]
        return from_dict({**good, "array": {**good["array"], "rows": deep}})

    for label, data in (("none", None), ("list", []), ("string", "x"), ("int", 5),
                        ("section-list", {"array": []}), ("section-none", {"array": None}),
                        ("mixed-key-types", {"array": {"rows": 4, 1: 2}}),
                        ("int-section", {1: {}}),
                        ("missing-buffers", {"array": good["array"]})):
        yield api(g, f"from_dict({label})", lambda _w, data=data: from_dict(data),
                  f"config.from_dict(<{label}>)")
    yield api(g, "from_dict(deep-value)", lambda _w: deep_rows(),
              "config.from_dict(<rows = a list nested 100000 deep>)")
    yield api(g, "from_dict(good)", lambda _w: from_dict(good).rows, "config.from_dict(good)",
              expect=lambda v: v == 4)

    def from_scalesim(path):
        from hbfpsim.config import from_scalesim
        return from_scalesim(path)

    cfg = ("[general]\nrun_name = x\n[architecture_presets]\nArrayHeight: 32\nArrayWidth: 32\n"
           "IfmapSramSzkB: 64\nFilterSramSzkB: 64\nOfmapSramSzkB: 64\nDataflow: ws\n"
           "Bandwidth: 10\n[run_presets]\nInterfaceBandwidth: USER\n")
    for label, content in (("garbage", GARBAGE), ("non-utf8", NON_UTF8), ("empty", ""),
                           ("height-word", cfg.replace("ArrayHeight: 32", "ArrayHeight: abc")),
                           ("height-zero", cfg.replace("ArrayHeight: 32", "ArrayHeight: 0")),
                           ("bandwidth-empty", cfg.replace("Bandwidth: 10", "Bandwidth:")),
                           ("bandwidth-nan", cfg.replace("Bandwidth: 10", "Bandwidth: nan")),
                           ("dataflow-unknown", cfg.replace("Dataflow: ws", "Dataflow: xs")),
                           ("sram-inf", cfg.replace("IfmapSramSzkB: 64", "IfmapSramSzkB: inf"))):
        yield api(g, f"from_scalesim({label})", lambda _w: from_scalesim("s.cfg"),
                  f"config.from_scalesim(<{label}>)", write("s.cfg", content))
    yield api(g, "from_scalesim(fifo)", lambda _w: from_scalesim("fifo"),
              "config.from_scalesim('fifo')", fifo(), timeout=20)
    yield api(g, "from_scalesim(missing)", lambda _w: from_scalesim("nope.cfg"),
              "config.from_scalesim('nope.cfg')")
    yield api(g, "from_scalesim(folder)", lambda _w: from_scalesim("adir"),
              "config.from_scalesim('adir')", mkdir("adir"))
    yield api(g, "from_scalesim(good)", lambda _w: from_scalesim("s.cfg").rows,
              "config.from_scalesim(good)", write("s.cfg", cfg), expect=lambda v: v == 32)


def api_trace() -> Iterator[Case]:
    g = "trace"

    def open_(path):
        from hbfpsim import trace
        return trace.open(path)

    for label, path in (("none", None), ("int", 5), ("empty", ""), ("nul", "a\x00b"),
                        ("bytes", b"t"), ("missing", "nope")):
        yield api(g, f"open({label})", lambda _w, path=path: open_(path), f"trace.open({path!r})")
    yield api(g, "open(fifo)", lambda _w: open_("fifo"), "trace.open('fifo')", fifo())
    yield api(g, "open(file)", lambda _w: open_("f"), "trace.open('f')", write("f", "x"))
    yield api(g, "open(deep-json)", lambda _w: open_("t"), "trace.open(<deeply nested>)",
              manifest_dir("t", DEEP_JSON))
    yield api(g, "open(good)", lambda _w: len(open_("t")), "len(trace.open(tiny))",
              tiny_trace("t"), expect=lambda v: v == 4)

    def writer(path="w", model="m", **kw):
        from hbfpsim.trace import TraceWriter
        return TraceWriter(path, model, **kw)

    def add(**kw):
        import numpy as np
        values = {"layer": "fc", "phase": "fwd", "m": 4, "n": 4, "k": 8, **kw}
        for key in ("a", "b"):
            if isinstance(values.get(key), str):
                values[key] = {"nan": np.full((4, 8) if key == "a" else (8, 4), np.nan,
                                              np.float32),
                               "wrong-shape": np.ones((8, 4) if key == "a" else (4, 8),
                                                      np.float32)}[values[key]]
        with writer() as w:
            w.add(values.pop("layer"), values.pop("phase"), values.pop("m"), values.pop("n"),
                  values.pop("k"), **values)
        return sorted(p.name for p in Path("w").iterdir())

    for label, kw in (("model=int", {"model": 5}),
                      ("capture=nan", {"capture": {"x": float("nan")}}),
                      ("capture=object", {"capture": {"x": object()}}),
                      ("capture=list", {"capture": [1]}), ("description=int", {"description": 1}),
                      ("path=empty", {"path": ""}), ("path=none", {"path": None})):
        yield api(g, f"TraceWriter({label})", lambda _w, kw=kw: writer(**kw),
                  f"TraceWriter(**{kw!r})")
    yield api(g, "TraceWriter(existing)", lambda _w: writer(), "TraceWriter('w') over a folder",
              mkdir("w"))
    for label, kw in (("m=0", {"m": 0}), ("m=true", {"m": True}), ("m=4.0", {"m": 4.0}),
                      ("phase=unknown", {"phase": "x"}), ("layer=int", {"layer": 5}),
                      ("count=true", {"count": True}), ("step=-1", {"step": -1}),
                      ("a-only", {"a": "wrong-shape"}),
                      ("wrong-shape", {"a": "wrong-shape", "b": "wrong-shape"})):
        yield api(g, f"TraceWriter.add({label})", lambda _w, kw=kw: add(**kw),
                  f"TraceWriter.add(**{kw!r}) in a with block")
    yield api(g, "TraceWriter.add(nan operands)", lambda _w: add(a="nan", b="nan"),
              "TraceWriter.add(a=NaNs, b=NaNs)", expect=lambda v: "manifest.json" in v,
              refusal_ok=True)
    yield api(g, "TraceWriter.add(numpy-ints)", lambda _w: add(m=__import__("numpy").int64(4)),
              "TraceWriter.add(m=np.int64(4))", expect=lambda v: "manifest.json" in v)

    def shape_trace(*args, **kw):
        from hbfpsim.trace import shape_trace
        return shape_trace(*args, **kw)

    for label, args, kw in (("unknown-model", ("s", "resnet999"), {}),
                            ("batch=0", ("s", "resnet50"), {"batch": 0}),
                            ("batch=true", ("s", "resnet50"), {"batch": True}),
                            ("unknown-setting", ("s", "resnet50"), {"bogus": 1}),
                            ("image=2^20+1", ("s", "resnet50"), {"image": 2**20 + 1}),
                            ("model=none", ("s", None), {})):
        yield api(g, f"shape_trace({label})", lambda _w, args=args, kw=kw: shape_trace(*args, **kw),
                  f"trace.shape_trace(*{args!r}, **{kw!r})")
    yield api(g, "shape_trace(resnet50 image=1)", lambda _w: str(shape_trace(
        "s", "resnet50", image=1)), "trace.shape_trace('s', 'resnet50', image=1)",
        expect=lambda v: v == "s", refusal_ok=True)
    yield api(g, "shape_trace(bert seq=1)", lambda _w: str(shape_trace("s", "bert-base", seq=1)),
              "trace.shape_trace('s', 'bert-base', seq=1)", expect=lambda v: v == "s",
              refusal_ok=True)

    def topology(**kw):
        from hbfpsim.trace.scalesim import import_topology
        return import_topology("t.csv", "out", **kw)

    csv_file = write("t.csv", "Layer, M, N, K,\nfc1, 64, 32, 16,\n")
    for label, kw in (("batch=true", {"batch": True}), ("batch=0", {"batch": 0}),
                      ("batch=2.0", {"batch": 2.0}), ("rounding=unknown", {"rounding": "x"}),
                      ("model=int", {"model": 5})):
        yield api(g, f"import_topology({label})", lambda _w, kw=kw: topology(**kw),
                  f"import_topology('t.csv', 'out', **{kw!r})", csv_file)


def api_train() -> Iterator[Case]:
    g = "train"

    def emulate(model, schedule, **kw):
        import torch
        from hbfpsim.train import emulate
        if model == "linear":
            model = torch.nn.Linear(4, 2)
        elif model == "grouped":
            model = torch.nn.Conv2d(4, 4, 3, groups=2)
        elif model == "relu":
            model = torch.nn.ReLU()
        return emulate(model, schedule, **kw)

    for label, args, kw in [("model=int", (5, "hbfp4"), {}), ("model=relu", ("relu", "hbfp4"), {}),
                            ("grouped-conv", ("grouped", "hbfp4"), {}),
                            ("schedule=int", ("linear", 4), {}),
                            ("schedule=unknown", ("linear", "hbfp3x"), {}),
                            ("schedule=empty", ("linear", ""), {}),
                            ("epochs=0", ("linear", "hbfp4"), {"epochs": 0}),
                            ("epochs=bool", ("linear", "hbfp4"), {"epochs": True}),
                            ("exact=list", ("linear", "hbfp4"), {"exact": [1]}),
                            ("exact-phase", ("linear", "hbfp4"), {"exact": {"phases": ["x"]}}),
                            ("exact-epochs", ("linear", "hbfp4"), {"exact": {"epochs": [1]}})]:
        yield api(g, f"emulate({label})", lambda _w, a=args, k=kw: emulate(*a, **k),
                  f"train.emulate(*{args!r}, **{kw!r})",
                  errors=("ValueError", "TypeError", "OSError"))
    yield api(g, "emulate(good)", lambda _w: emulate("linear", "booster").layers,
              "train.emulate(Linear, 'booster').layers", expect=lambda v: v == ("Linear",))

    def parse(data):
        from hbfpsim.train.spec import parse
        return parse(data)

    for label, data in [("not-a-dict", 5), ("empty", {}), ("train=list", {"train": []}),
                        ("seeds=str", {"train": {"task": "digits", "variants": ["fp32"],
                                                 "seeds": "0"}})]:
        yield api(g, f"spec.parse({label})", lambda _w, d=data: parse(d),
                  f"train.spec.parse({data!r})")


def api_replay_and_schedule() -> Iterator[Case]:
    g = "replay"

    def load(*args, **kw):
        from hbfpsim import replay
        return replay.load(*args, **kw)

    def run(spec):
        from hbfpsim import replay
        return replay.run(spec, progress=False)

    setup = run_setup(runfile_text())
    for label, args, kw in (("none", (None,), {}), ("empty", ("",), {}), ("int", (5,), {}),
                            ("out=int", ("r.toml",), {"out": 5}),
                            ("out=empty", ("r.toml",), {"out": ""}),
                            ("out=none-string", ("r.toml",), {"out": "   "})):
        yield api(g, f"load({label})", lambda _w, args=args, kw=kw: load(*args, **kw),
                  f"replay.load(*{args!r}, **{kw!r})", setup)
    yield api(g, "load(fifo)", lambda _w: load("fifo"), "replay.load('fifo')", fifo())
    yield api(g, "load(folder)", lambda _w: load("adir"), "replay.load('adir')", mkdir("adir"))
    yield api(g, "load(good)", lambda _w: len(load("r.toml").variants), "replay.load(good)",
              setup, expect=lambda v: v == 1)
    yield api(g, "run(int)", lambda _w: run(5), "replay.run(5)")
    yield api(g, "run(missing)", lambda _w: run("nope.toml"), "replay.run('nope.toml')")
    yield api(g, "run(good)", lambda _w: len(run("r.toml").rows), "len(replay.run(good).rows)",
              setup, expect=lambda v: v == 4)

    def parse(data):
        from hbfpsim.replay.runfile import parse
        return parse(data)

    for label, data in (("none", None), ("list", []), ("run-list", {"run": []}),
                        ("mixed-key-types", {"run": {"traces": ["t"], 1: 2}, "variant": []}),
                        ("variant-dict", {"run": {"traces": [str(TRACES / "mlp_digits")],
                                                  "arrays": ["small16"]},
                                          "variant": {"name": "v"}})):
        yield api(g, f"runfile.parse({label})", lambda _w, data=data: parse(data),
                  f"replay.runfile.parse(<{label}>)")

    g = "schedule"

    def numerics(**kw):
        from hbfpsim.numerics import Numerics
        return Numerics.create(**kw)

    def rule(**kw):
        from hbfpsim.format_schedule import Rule
        return Rule(numerics(input="hbfp6"), **kw)

    for label, kw in (("phases=upper-case", {"phases": ("FWD",)}),
                      ("phases=string", {"phases": "fwd"}),
                      ("epochs=one", {"epochs": (1,)}), ("epochs=negative", {"epochs": (-1, None)}),
                      ("epochs=bool", {"epochs": (True, None)}),
                      ("epochs=word", {"epochs": ("first", None)}),
                      ("epochs=none", {"epochs": None}),
                      ("layers=string", {"layers": "fc"}), ("layers=ints", {"layers": (1,)}),
                      ("layers=empty", {"layers": ()})):
        yield api(g, f"Rule({label})", lambda _w, kw=kw: rule(**kw), f"Rule(hbfp6, **{kw!r})")

    def rule_raw():
        from hbfpsim.format_schedule import Rule
        return Rule("hbfp6")

    yield api(g, "Rule(numerics=string)", lambda _w: rule_raw(), "Rule('hbfp6')")

    def booster(layer, phase, epoch, **where):
        from hbfpsim.format_schedule import PRESETS, RunContext
        return PRESETS["booster"].numerics_for(layer, phase, epoch, RunContext(**where)).input.name

    yield api(g, "booster(no-last-epoch)", lambda _w: booster("fc", "fwd", 3),
              "PRESETS['booster'].numerics_for('fc', 'fwd', 3) without RunContext")
    yield api(g, "booster(layer=None)", lambda _w: booster(None, "fwd", 3, last_epoch=5),
              "PRESETS['booster'].numerics_for(None, 'fwd', 3, RunContext(last_epoch=5))")
    yield api(g, "booster(phase=upper-case)", lambda _w: booster("fc", "FWD", 3, last_epoch=5),
              "PRESETS['booster'].numerics_for('fc', 'FWD', 3, RunContext(last_epoch=5))")
    yield api(g, "booster(last-epoch)", lambda _w: booster("x", "fwd", 5, first_layer="a",
                                                           last_layer="b", last_epoch=5),
              "booster in the last epoch", expect=lambda v: v == "hbfp6@64")

    def run_context(*args):
        from hbfpsim.format_schedule import run_context
        return run_context(*args)

    yield api(g, "run_context(empty)", lambda _w: run_context([], []), "run_context([], [])",
              expect=lambda w: w.first_layer is None and w.last_epoch is None)
    for label, kw in (("input=unknown", {"input": "nope"}), ("input=int", {"input": 5}),
                      ("block=float", {"input": "hbfp4", "block_accumulator": "fp32"}),
                      ("block-with-fp32", {"input": "fp32", "block_accumulator": "fixed16"}),
                      ("output-fixed", {"output": "fixed32"}),
                      ("accumulator=none", {"accumulator": None})):
        yield api(g, f"Numerics.create({label})", lambda _w, kw=kw: numerics(**kw),
                  f"Numerics.create(**{kw!r})")

    def numerics_direct():
        from hbfpsim.numerics import Numerics
        return Numerics("hbfp4", "hbfp4", "fp32", "fp32")

    yield api(g, "Numerics(names)", lambda _w: numerics_direct(),
              "Numerics('hbfp4', 'hbfp4', 'fp32', 'fp32') (documented TypeError)",
              errors=("ValueError", "TypeError"))


def api_cost() -> Iterator[Case]:
    g = "cost"

    def mac(*args):
        from hbfpsim.cost import mac_cost
        return mac_cost(*args)

    for label, args in (("format=none", (None,)), ("format=unknown", ("fp7",)),
                        ("acc=fixed7", ("hbfp4", "fixed7")), ("acc=int", ("hbfp4", 16)),
                        ("acc=unknown", ("hbfp4", "nope"))):
        yield api(g, f"mac_cost({label})", lambda _w, args=args: mac(*args),
                  f"mac_cost(*{args!r})")
    yield api(g, "mac_cost(fixed-for-fp32)", lambda _w: mac("fp32", "fixed16").area,
              "mac_cost('fp32', 'fixed16').area", expect=lambda v: v > 0, refusal_ok=True)

    def array_cost(config):
        from hbfpsim.cost import array_cost
        return array_cost(config)

    yield api(g, "array_cost(string)", lambda _w: array_cost("array32"), "array_cost('array32')")
    yield api(g, "array_cost(none)", lambda _w: array_cost(None), "array_cost(None)")

    def table(formats=("hbfp4",), accumulators=None, booster=None):
        from hbfpsim.cost import density_table
        return [r.density for r in density_table(formats, accumulators, booster)]

    for label, kw in (("acc-not-shown", {"accumulators": {"mxfp4": "fixed16"}}),
                      ("booster=nan", {"booster": {"hbfp4": float("nan")}}),
                      ("booster=inf", {"booster": {"hbfp4": float("inf")}}),
                      ("booster=2", {"booster": {"hbfp4": 2.0}}),
                      ("booster=negative", {"booster": {"hbfp4": -1.0, "hbfp6": 2.0}}),
                      ("booster=nan-pair", {"booster": {"hbfp4": float("nan"), "hbfp6": 1.0}}),
                      ("formats=string", {"formats": "hbfp4"}),
                      ("formats=unknown", {"formats": ["fp7"]})):
        yield api(g, f"density_table({label})", lambda _w, kw=kw: table(**kw),
                  f"density_table(**{kw!r})")

    def mixed(parts):
        from hbfpsim.cost import mixed_density
        return mixed_density(parts)

    for label, parts in (("empty", []), ("nan-weight", [(2.0, float("nan"))]),
                         ("nan-density", [(float("nan"), 1.0)]),
                         ("inf-density", [(float("inf"), 1.0)]),
                         ("negative-weight", [(2.0, -1.0), (3.0, 2.0)]),
                         ("zero-density", [(0.0, 1.0)])):
        yield api(g, f"mixed_density({label})", lambda _w, parts=parts: mixed(parts),
                  f"mixed_density({parts!r})")

    def sweep(*args):
        from hbfpsim.cost import width_sweep
        return width_sweep(*args)

    for label, args in (("width=7", (["hbfp4"], [7])), ("width=true", (["hbfp4"], [True])),
                        ("width=65", (["hbfp4"], [65])), ("format=unknown", (["fp7"], [16]))):
        yield api(g, f"width_sweep({label})", lambda _w, args=args: sweep(*args),
                  f"width_sweep(*{args!r})")


# --- figures of sweeps, GEMMs, MACs and accumulators: `hbfpsim plot sweep | heatmap | ...` ---

def swept_store(text: str = SWEEP) -> Callable[[Path], None]:
    """s.toml and the tiny trace, and the sweep run into s.sqlite (12 runs)."""
    def fn(work: Path) -> None:
        from hbfpsim.sweep import load
        from hbfpsim.sweep.driver import run
        run(load(work / "s.toml"), work / "s.sqlite", workers=1, progress=False)
    return steps(sweep_setup(text), fn)


def plot_figures_command() -> Iterator[Case]:
    done, slow = swept_store(), {"timeout": 120}
    accuracy = swept_store(SWEEP.replace('base = "small16"',
                                         'base = "small16"\ncompute = "accuracy"'))
    for figure in ("sweep", "heatmap"):
        g = f"plot {figure}"
        for label, value, setup in INPUT_PATHS:
            yield cli(g, f"store={label}", ["plot", figure, "--store", value, "--out", "f.png"],
                      setup)
        yield cli(g, "store=empty-store", ["plot", figure, "--store", "s.sqlite"], empty_store())
        yield cli(g, "store=other-sqlite", ["plot", figure, "--store", "o.sqlite"],
                  sqlite_file("o.sqlite"))
        yield cli(g, "store=missing-option", ["plot", figure, "--out", "f.png"])
        for label, value in [("the-store", "s.sqlite"), ("text-suffix", "f.txt"),
                             ("no-suffix", "f"), ("non-utf8-suffix", "x." + NON_UTF8_ARG)]:
            yield cli(g, f"out={label}", ["plot", figure, "--store", "s.sqlite", "--out", value],
                      done, **slow)
        for label, value, setup, expect, refusal in output_files(".png"):
            if label in ("fifo", "link-to-outside-file", "non-utf8-name"):
                continue                         # each computes a sweep: the rest is enough
            yield cli(g, f"out={label}", ["plot", figure, "--store", "s.sqlite", "--out", value],
                      steps(done, setup) if setup else done, expect=expect, refusal_ok=refusal,
                      **slow)
        yield cli(g, "out=default", ["plot", figure, "--store", "s.sqlite"], done,
                  expect=ok("wrote", files=[f"{figure}.png"]), **slow)
    g = "plot sweep"
    for label, axis, value in [("x=word", "--x", "abc"), ("x=empty", "--x", ""),
                               ("x=swept-key", "--x", "rows"), ("x=key", "--x", "key"),
                               ("x=non-utf8", "--x", NON_UTF8_ARG), ("y=same-as-x", "--y",
                                                                    "seconds"),
                               ("y=accuracy-of-a-timing-sweep", "--y", "sqnr_db_median")]:
        yield cli(g, label, ["plot", "sweep", "--store", "s.sqlite", axis, value], done, **slow)
    yield cli(g, "x=density-y=area", ["plot", "sweep", "--store", "s.sqlite", "--x", "density",
                                      "--y", "array_area_um2"], done,
              expect=ok("wrote", files=["sweep.png"]), **slow)
    yield cli(g, "y=w1-of-an-accuracy-sweep", ["plot", "sweep", "--store", "s.sqlite", "--x",
                                              "density", "--y", "w1_median"], accuracy,
              expect=ok("wrote", files=["sweep.png"]), **slow)
    g = "plot heatmap"
    for label, value in [("word", "abc"), ("empty", ""), ("energy", "energy_pj"),
                         ("non-utf8", NON_UTF8_ARG)]:
        yield cli(g, f"value={label}", ["plot", "heatmap", "--store", "s.sqlite", "--value",
                                        value], done, **slow)
    yield cli(g, "value=stall_share", ["plot", "heatmap", "--store", "s.sqlite", "--value",
                                       "stall_share"], done,
              expect=ok("wrote", files=["heatmap.png"]), **slow)
    for option in ("--variant", "--dataflow"):
        for label, value in [("absent", "bf16"), ("empty", ""), ("non-utf8", NON_UTF8_ARG)]:
            yield cli(g, f"{option[2:]}={label}", ["plot", "heatmap", "--store", "s.sqlite",
                                                   option, value], done, **slow)
    yield cli(g, "variant=fp32", ["plot", "heatmap", "--store", "s.sqlite", "--variant", "fp32"],
              done, expect=ok("wrote", files=["heatmap.png"]), **slow)
    yield cli(g, "dataflow=not-swept", ["plot", "heatmap", "--store", "s.sqlite", "--dataflow",
                                        "ws"], done, **slow)
    g = "plot timeline"
    for label, value, setup in INPUT_PATHS:
        yield cli(g, f"config={label}", ["plot", "timeline", value, "8", "8", "8"], setup)
    for i, dim in enumerate("MNK"):
        for label, value in INT_WORDS:
            dims = ["64", "64", "64"]
            dims[i] = value
            yield cli(g, f"{dim}={label}", ["plot", "timeline", "small16", *dims])
    yield cli(g, "K=2^40", ["plot", "timeline", "small16", "8", "8", "1099511627776"])
    yield cli(g, "legal", ["plot", "timeline", "array32", "512", "512", "512"],
              expect=ok("wrote", files=["timeline.png"]))
    for label, value in INT_WORDS:
        legal = label in ("2^63", "31-digits")
        yield cli(g, f"max-folds={label}", ["plot", "timeline", "small16", "300", "200", "500",
                                            "--max-folds", value],
                  expect=ok("wrote", files=["timeline.png"]) if legal else "error")
    for label, value, setup, expect, refusal in output_files(".svg"):
        yield cli(g, f"out={label}", ["plot", "timeline", "small16", "64", "64", "64", "--out",
                                      value], setup, expect=expect, refusal_ok=refusal)
    g = "plot area"
    for label, value in [("empty", ""), ("unknown", "fp7"), ("block-0", "hbfp4@0"),
                         ("booster", "booster"), ("very-long", LONG), ("non-utf8", NON_UTF8_ARG)]:
        yield cli(g, f"format={label}", ["plot", "area", "fp32", value])
    yield cli(g, "format=none", ["plot", "area"])
    yield cli(g, "format=upper-case", ["plot", "area", "FP32", "MXFP4", "hbfp4@32"],
              expect=ok("wrote", files=["area.png"]))
    for label, value in [("no-equals", "hbfp4"), ("float-for-hbfp", "hbfp4=fp32"),
                         ("fixed-for-fp32", "fp32=fixed16"), ("not-drawn", "mxfp4=fixed16"),
                         ("fixed7", "hbfp4=fixed7"), ("empty", ""), ("non-utf8", NON_UTF8_ARG)]:
        yield cli(g, f"acc={label}", ["plot", "area", "fp32", "hbfp4", "--acc", value])
    yield cli(g, "acc=fixed16", ["plot", "area", "fp32", "hbfp4", "--acc", "hbfp4=fixed16"],
              expect=ok("wrote", files=["area.png"]))
    for label, value, setup, expect, refusal in output_files(".pdf"):
        yield cli(g, f"out={label}", ["plot", "area", "hbfp4", "--out", value], setup,
                  expect=expect, refusal_ok=refusal)
    g = "plot vrr"
    fast = ["--lengths", "64", "256"]
    for label, value in INT_WORDS + [("one", "1"), ("not-a-multiple-of-64", "100"),
                                     ("2^60", str(2**60))]:
        if label == "2^60":            # no knee within 52 bits in some panels: drawn, noted
            yield cli(g, f"lengths={label}", ["plot", "vrr", "--lengths", value],
                      expect=ok("wrote", files=["vrr.png"]), **slow)
            continue
        if label in ("2^63", "31-digits"):
            continue                  # as 2^60 (the model's floats), slower: one is enough
        yield cli(g, f"lengths={label}", ["plot", "vrr", "--lengths", value])
    yield cli(g, "lengths=none", ["plot", "vrr", "--lengths"])
    yield cli(g, "legal", ["plot", "vrr", *fast], expect=ok("wrote", files=["vrr.png"]))
    for label, value in FLOAT_WORDS + [("zero", "0")]:
        legal = label in ("inf", "1e400", "2^63")       # every bit count meets it: knee 1
        yield cli(g, f"max-lost={label}", ["plot", "vrr", *fast, "--max-lost", value],
                  expect=ok("wrote", files=["vrr.png"]) if legal else "error")
    for label, value in INT_WORDS:
        if label in ("2^63", "31-digits"):
            continue                  # legal but measuring that many MACs takes hours
        yield cli(g, f"budget={label}", ["plot", "vrr", *fast, "--budget", value])
    yield cli(g, "budget=small", ["plot", "vrr", "--lengths", "64", "--budget", "1000"],
              expect=ok("wrote", files=["vrr.png"]), **slow)
    for label, value, setup, expect, refusal in output_files(".png"):
        yield cli(g, f"out={label}", ["plot", "vrr", *fast, "--out", value], setup,
                  expect=expect, refusal_ok=refusal)


# =============================================================================================
# Boundaries between fields and between processes: values legal alone but not together, keys
# given twice, results that could be silently lost, what a killed or refused command leaves
# =============================================================================================

def boundary_training() -> Iterator[Case]:
    """Training run files: outputs against captures, batches against data, contexts against
    texts."""
    g = "train-bounds"
    text = TRAIN.replace('"digits"', '"text"') + ("width = 8\nheads = 2\ndepth = 1\n"
                                                  "batch = 2\nsteps_per_epoch = 1\n")
    two = TRAIN.replace("epochs = 1", "epochs = 2")         # 2 x 44 steps (1437 // 32)
    variant = '[[variant]]\nname = "mine"\ninput = "hbfp4"\n'
    rule = variant + '[[variant.rule]]\ninput = "hbfp8"\n'
    bad = {"capture-is-out": TRAIN + '[train.capture]\npath = "tout"\n',
           "capture-is-out-unnormalized": TRAIN + '[train.capture]\npath = "./x/../tout"\n',
           "capture-inside-out": TRAIN + '[train.capture]\npath = "tout/trace"\n',
           "capture-holds-out": TRAIN.replace('"tout"', '"tdir/tout"')
           + '[train.capture]\npath = "tdir"\n',
           "capture-holds-working-out": TRAIN + '[train.capture]\npath = "."\n',
           "batch-over-training-set": TRAIN + "batch = 4096\n",
           "batch-one-over-training-set": TRAIN + "batch = 1438\n",
           "context-over-validation-text": text + "context = 1024\ntext_bytes = 10000\n",
           "context-equals-validation-text": text + "context = 1000\ntext_bytes = 10000\n",
           "val-windows-over-text": text + "context = 64\ntext_bytes = 20000\nval_windows = 32\n",
           "warmup-whole-run": two + 'lr_schedule = "cosine"\nwarmup_steps = 88\n',
           "warmup-beyond-run": TRAIN + "warmup_steps = 1000000\n",
           "variant-warmup-whole-run": TRAIN + variant + "warmup_steps = 44\n",
           "rule-epochs-beyond-run": two + rule + "epochs = [2, 5]\n",
           "rule-epochs-reversed-by-last": two + rule + 'epochs = ["last", 0]\n',
           "rule-steps-beyond-run": two + rule + "steps = [88, 100]\n",
           "rule-steps-outside-its-epochs": two + rule + "epochs = [0, 0]\nsteps = [44, 87]\n",
           "exact-epochs-beyond-run": TRAIN + "exact = {epochs = [1, 3]}\n",
           "exact-epochs-reversed": two + "exact = {epochs = [1, 0]}\n",
           "exact-layers-match-none": TRAIN + 'exact = {layers = ["nope*"]}\n',
           "capture-steps-beyond-epoch": TRAIN + '[train.capture]\nsteps = 45\npath = "tr"\n',
           "method-key-no-variant-takes": TRAIN.replace('["fp32"]', '["booster-cnn"]')
           + 'rounding = "even"\n',
           "key-twice-capture": TRAIN + 'capture = {path = "a"}\n[train.capture]\nseed = 0\n',
           "key-twice-exact": TRAIN + 'exact = {layers = ["*"]}\n[train.exact]\nepochs = [0, 0]\n',
           "key-twice-quoted": TRAIN + '"batch" = 8\nbatch = 16\n'}
    for label, content in bad.items():
        yield cli(g, label, ["train", "t.toml", "--quiet"], write("t.toml", content))
    yield cli(g, "capture-is-out-option", ["train", "t.toml", "--out", "tr", "--quiet"],
              write("t.toml", TRAIN + '[train.capture]\npath = "tr"\n'))
    yield cli(g, "capture-holds-out-option", ["train", "t.toml", "--out", "tr/run", "--quiet"],
              write("t.toml", TRAIN + '[train.capture]\npath = "tr"\n'))
    yield cli(g, "capture-is-out-through-a-link", ["train", "t.toml", "--quiet"],
              steps(mkdir("real", with_file=False), link("alias", "real"),
                    write("t.toml", TRAIN.replace('"tout"', '"real/run"')
                          + '[train.capture]\npath = "alias/run"\n')))
    yield cli(g, "capture-beside-out", ["train", "t.toml", "--quiet"],
              write("t.toml", TRAIN + '[train.capture]\npath = "tout-trace"\n'),
              expect=ok("1 runs in", files=["tout/results.csv", "tout-trace/manifest.json"]),
              timeout=180)


def boundary_sweep_spec() -> Iterator[Case]:
    """Sweep specs: keys given twice, huge expansions, runs the disk cannot hold."""
    g = "sweep-bounds"
    store = ["--store", "s.sqlite", "--quiet"]
    for label, text in [
            ("axes-key-twice", SWEEP + "[axes.array]\nrows = [32]\n"),
            ("axes-key-twice-inline", SWEEP.replace("rows = [8, 16]",
                                                    "rows = [8, 16]\narray = {rows = [32]}")),
            ("dram-key-twice", SWEEP + "[axes.dram]\nbytes_per_cycle = [4]\n"),
            ("buffers-key-twice", SWEEP.replace("[axes]\n", "[axes]\ninput_kib = 64\n")
             + "[axes.buffers]\ninput_kib = [128, 256]\n"),
            ("section-twice", SWEEP + "[axes]\nrows = [32]\n"),
            ("max-runs-plus-one", SWEEP.replace(
                "rows = [8, 16]", "rows = {start = 1, stop = 1001, step = 1}").replace(
                "cols = [8, 16]", "cols = {start = 1, stop = 9991, step = 1}")),
            ("refused-run-after-valid-ones", SWEEP.replace(
                "[axes]\n", '[axes]\ninput = ["hbfp4", "fp32"]\nblock_accumulator = '
                '["fixed13"]\n').replace('[[variant]]\nname = "fp32"\ninput = "fp32"\n',
                                          ""))]:
        yield cli(g, label, ["sweep", "run", "s.toml", *store], sweep_setup(text))
    # 10^7 accuracy runs over a 294-GEMM trace: about 0.9 TB, refused (on a disk with less
    # free) before any run is expanded, the estimate in the one line
    huge = (f'[sweep]\ntraces = ["{REPO / "traces" / "bert_base_step"}"]\nbase = "small16"\n'
            'compute = "accuracy"\n[axes]\nrows = {start = 1, stop = 100, step = 1}\n'
            'cols = {start = 1, stop = 100, step = 1}\n'
            'dram_bytes_per_cycle = {start = 1, stop = 1000, step = 1}\n')
    yield cli(g, "disk-cannot-hold", ["sweep", "run", "s.toml", *store], write("s.toml", huge),
              timeout=30)
    # 10^6 combinations, one run after the constraints: the estimate line first (not with
    # --quiet), then the sweep
    wide = SWEEP.replace('"rows * cols <= 256"', '"rows == 8 and cols == 8 and '
                         'dram_bytes_per_cycle == 8"').replace(
        "rows = [8, 16]", "rows = {start = 8, stop = 107, step = 1}").replace(
        "cols = [8, 16]", "cols = {start = 8, stop = 107, step = 1}").replace(
        "dram_bytes_per_cycle = {start = 8, stop = 32, factor = 2}",
        "dram_bytes_per_cycle = {start = 8, stop = 107, step = 1}")
    yield cli(g, "estimate-line", ["sweep", "run", "s.toml", "--store", "s.sqlite"],
              sweep_setup(wide), timeout=120,
              expect=lambda r: sweep_ok("1 computed", files=["s.sqlite"])(r)
              and r.err.startswith("hbfpsim: sweep s: at most 1,000,000 runs (before "
                                   "constraints) x 4 GEMMs (totals only) each: a store "
                                   "of up to "))
    yield cli(g, "estimate-quiet", ["sweep", "run", "s.toml", *store], sweep_setup(wide),
              timeout=120, expect=lambda r: sweep_ok("1 computed")(r) and r.err == "")


def boundary_sweep_run() -> Iterator[Case]:
    """Sweep runs: schedulers that cannot be reached, refused stores, what a killed sweep
    leaves."""
    g = "sweep-procs"
    store = ["--store", "s.sqlite", "--quiet"]

    def wal_sqlite(name: str, schema: str | None, meta: bool = True) -> Callable[[Path], None]:
        """An SQLite database in WAL mode: a ``meta`` table (with a row for ``schema``, if
        given) as a store has, or (not ``meta``) a table of its own."""
        def fn(work: Path) -> None:
            import sqlite3
            db = sqlite3.connect(work / name)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)" if meta else
                       "CREATE TABLE t (x)")
            if schema is not None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (schema,))
            db.commit()
            db.close()
        return fn

    # --scheduler: refused before any store exists (a store that exists is not touched)
    for label, value in [("nothing-listening", "tcp://127.0.0.1:1"),
                         ("nothing-listening-ipv6", "tcp://[::1]:1"),
                         ("unresolvable-host", "tcp://no-such-host.invalid:8786"),
                         ("tcp-only", "tcp://"), ("port-not-a-number", "tcp://host:notaport"),
                         ("port-zero", "tcp://127.0.0.1:0"), ("port-65536", "tcp://127.0.0.1:65536"),
                         ("no-port", "tcp://127.0.0.1"), ("no-host", "tcp://:8786"),
                         ("udp", "udp://x:1"), ("unclosed-ipv6", "tcp://[::1:8786"),
                         ("local-upper", "LOCAL"), ("local-space", "local "),
                         ("path", "tcp://127.0.0.1:8786/x"), ("newline", "tcp://a\n:1")]:
        yield cli(g, f"scheduler-{label}", ["sweep", "run", "s.toml", *store, "--scheduler",
                                            value], sweep_setup())
        yield cli(g, f"scheduler-{label}-existing-store", ["sweep", "run", "s.toml", *store,
                                                           "--scheduler", value],
                  sweep_setup(SWEEP, empty_store()))
    # refused stores keep nothing beside them (-wal, -shm)
    for label, setup in [("wal-not-a-store", wal_sqlite("o.sqlite", None, meta=False)),
                         ("wal-no-schema-row", wal_sqlite("o.sqlite", None)),
                         ("wal-other-schema", wal_sqlite("o.sqlite", "hbfpsim-sweep-store/0"))]:
        yield cli(g, f"store-{label}-run", ["sweep", "run", "s.toml", "--store", "o.sqlite",
                                            "--quiet"], sweep_setup(SWEEP, setup))
        yield cli(g, f"store-{label}-status", ["sweep", "status", "--store", "o.sqlite"], setup)
        yield cli(g, f"store-{label}-export", ["sweep", "export", "--store", "o.sqlite",
                                               "--out", "x.csv"], setup)
    # a run refused while the spec is expanded: no store is left
    tile = SWEEP.replace("rows = [8, 16]", "rows = [8, 512]\ninput_kib = [1]").replace(
        "cols = [8, 16]", "cols = [8, 512]").replace('"rows * cols <= 256"', '"rows > 0"')
    yield cli(g, "run-refused-in-expansion", ["sweep", "run", "s.toml", *store],
              sweep_setup(tile))
    # Dask's LocalCluster: a legal sweep, and Ctrl-C / SIGTERM while it starts (one line,
    # and the store it had created removed: no run was done)
    yield cli(g, "scheduler-local", ["sweep", "run", "s.toml", *store, "--scheduler", "local",
                                     "--workers", "1"], sweep_setup(),
              expect=sweep_ok("12 computed", files=["s.sqlite"]), timeout=180)
    endless = SWEEP.replace("{start = 8, stop = 32, factor = 2}",
                            "{start = 1, stop = 5000, step = 1}")
    for sig in (signal.SIGINT, signal.SIGTERM):
        yield cli(g, f"scheduler-local-{signal.Signals(sig).name}",
                  ["sweep", "run", "s.toml", *store, "--scheduler", "local", "--workers", "1"],
                  sweep_setup(endless), signal=(sig, 2.5), timeout=120)
    # the API's gemm_rows: a bool or None, refused before any store exists

    def sweep_run(gemm_rows):
        from hbfpsim.sweep import driver, load
        return driver.run(load("s.toml"), "s.sqlite", workers=1, gemm_rows=gemm_rows,
                          progress=False).computed

    for label, value in (("string", "yes"), ("int", 1), ("numpy-bool", "np.True_")):
        call = (lambda _w: sweep_run(__import__("numpy").True_)) if value == "np.True_" else \
            (lambda _w, value=value: sweep_run(value))
        yield api(g, f"gemm_rows={label}", call, f"driver.run(spec, store, gemm_rows={value!r})",
                  sweep_setup())
    yield api(g, "gemm_rows=False", lambda _w: sweep_run(False),
              "driver.run(spec, store, gemm_rows=False)", sweep_setup(), expect=lambda v: v == 12,
              timeout=120)


def boundary_numerics() -> Iterator[Case]:
    """Values beyond float32, arguments of the wrong type, epochs outside a capture, rule
    ranges that never apply."""
    inf = float("inf")
    over = (2 - 2.0**-24) * 2.0**127            # float64 from here on rounds to float32 Inf
    fp32_max = (2 - 2.0**-23) * 2.0**127
    g = "num-bounds beyond-float32"
    big = lambda np: np.array([1e39, -1e300, 1.0])

    def equals(*values):
        return lambda q: __import__("numpy").asarray(q).tolist() == list(values)

    for label, fmt, kw, want in (
            ("fp32-ieee-overflow", "fp32", {}, (inf, -inf, 1.0)),
            ("fp32-saturate", "fp32", {"saturate": True}, (fp32_max, -fp32_max, 1.0)),
            ("fp8_e4m3-saturates", "fp8_e4m3", {}, (448.0, -448.0, 1.0)),
            ("hbfp4-clamps-at-127", "hbfp4", {}, (7 * 2.0**124, -7 * 2.0**124, 0.0)),
            ("mxfp4-clamps-at-127", "mxfp4", {}, (6 * 2.0**127, -6 * 2.0**127, 0.0))):
        yield api(g, label, _quantize(big, fmt, **kw),
                  f"quantize([1e39, -1e300, 1.0], {fmt!r}, **{kw!r}) == {want}",
                  expect=equals(*want))
    yield api(g, "fp32-threshold", _quantize(lambda np: np.array([np.nextafter(over, 0), over]),
                                             "fp32"),
              "quantize([nextafter(T, 0), T], 'fp32'), T = (2 - 2^-24) 2^127: [max, inf]",
              expect=equals(fp32_max, inf))
    yield api(g, "hbfpemulator-beyond-float32", _quantize(
        lambda np: np.array([over, 1.0]), compat="hbfpemulator"),
        "quantize([(2 - 2^-24) 2^127, 1], 'hbfp4', compat='hbfpemulator')")
    yield api(g, "hbfpemulator-propagate-beyond-float32", _quantize(
        lambda np: np.array([1e39, 1.0]), compat="hbfpemulator", nonfinite="propagate"),
        "quantize([1e39, 1], 'hbfp4', compat='hbfpemulator', nonfinite='propagate')")
    yield api(g, "int8-beyond-float32", _quantize(big, "int8"),
              "quantize([1e39, -1e300, 1], 'int8')")

    def a_over(np):
        a = np.ones((3, 5))
        a[0, 1], a[0, 3], a[1, 0] = 1e39, -1e39, over
        a[2, 2] = np.nextafter(over, 0)
        return a

    def counted(a_count, b_count, nan_rows=(), inf_rows=()):
        def check(result) -> bool:
            import numpy as np
            out, stats = result
            return (stats.operand_overflows == (a_count, b_count)
                    and all(np.isnan(out[r]).all() for r in nan_rows)
                    and all((out[r] == inf).all() for r in inf_rows))
        return check

    yield api(g, "matmul-fp32-counts-operand-overflows", _mm(a_over, lambda np: np.ones((5, 2)),
                                                            "fp32"),
              "matmul(A with 3 elements >= (2 - 2^-24) 2^127, ones, 'fp32'): "
              "operand_overflows == (3, 0)", expect=counted(3, 0, (0,), (1,)))
    yield api(g, "matmul-fp32-element-stats", _mm(a_over, lambda np: np.ones((5, 2)), "fp32",
                                                  stats="element", fast_path=False),
              "matmul(..., 'fp32', stats='element', fast_path=False): (3, 0)",
              expect=counted(3, 0, (0,), (1,)))
    yield api(g, "matmul-fp16-B-rtz", _mm(lambda np: np.ones((2, 5)),
                                          lambda np: np.full((5, 2), 7e4), "fp16",
                                          operand_rounding="rtz"),
              "matmul(ones, 7e4s, 'fp16', operand_rounding='rtz'): (0, 10)",
              expect=counted(0, 10, (), (0, 1)))
    def a_far(np):                # far beyond 2^128: Inf whichever way a draw goes
        a = np.ones((3, 5))
        a[0, 1], a[0, 3], a[1, 0] = 1e39, -1e39, 1e300
        return a

    yield api(g, "matmul-fp32-stochastic", _mm(a_far, lambda np: np.ones((5, 2)), "fp32",
                                               operand_rounding="stochastic", seed=1),
              "matmul(A with 1e39, -1e39, 1e300, ones, 'fp32', operand_rounding='stochastic', "
              "seed=1): (3, 0)", expect=counted(3, 0, (0,), (1,)))
    yield api(g, "matmul-fixed-plan-refuses", lambda _w: _mm(
        lambda np: np.full((2, 4), 1e5), lambda np: np.ones((4, 2)),
        _get("fp8_e5m2", saturate=False), "fp8_e4m3", plan="fixed32")(_w),
        "matmul(1e5s, ones, fp8_e5m2 (saturate=False), 'fp8_e4m3', plan='fixed32')")

    def saturated(result) -> bool:
        import numpy as np
        out, stats = result
        return (stats.operand_overflows == (0, 0) and stats.levels[0].overflows == 6
                and bool((out == np.inf).all()))

    yield api(g, "matmul-saturating-sums-overflow", lambda _w: _mm(
        lambda np: np.full((2, 2), 1e39), lambda np: np.ones((2, 3)),
        _get("fp32", saturate=True))(_w),
        "matmul(1e39s (2 x 2), ones (2 x 3), fp32 saturate=True): 6 accumulator overflows",
        expect=saturated)

    g = "num-bounds types"
    ones = lambda np: np.ones((2, 64))
    b64 = lambda np: np.ones((64, 3))
    typed = [("quantize fmt=int", _quantize(ones, 123), "quantize(x, 123)"),
             ("quantize fmt=float", _quantize(ones, 4.0), "quantize(x, 4.0)"),
             ("quantize x=complex", _quantize(lambda np: np.ones(4, complex)),
              "quantize(complex, 'hbfp4')"),
             ("quantize axis=str", _quantize(ones, axis="0"), "quantize(x, 'hbfp4', axis='0')"),
             ("quantize rounding=int", _quantize(ones, rounding=3),
              "quantize(x, 'hbfp4', rounding=3)"),
             ("quantize seed=str", _quantize(ones, rounding="stochastic", seed="1"),
              "quantize(x, 'hbfp4', rounding='stochastic', seed='1')"),
             ("quantize seed=float-unused", _quantize(ones, seed=1.5),
              "quantize(x, 'hbfp4', seed=1.5)"),
             ("quantize nonfinite=int", _quantize(ones, nonfinite=1),
              "quantize(x, 'hbfp4', nonfinite=1)"),
             ("quantize saturate=str", _quantize(ones, "fp8_e4m3", saturate="yes"),
              "quantize(x, 'fp8_e4m3', saturate='yes')"),
             ("quantize per=int", _quantize(ones, "int8", per=1), "quantize(x, 'int8', per=1)"),
             ("quantize compat=int", _quantize(ones, compat=1), "quantize(x, 'hbfp4', compat=1)"),
             ("get name=int", lambda _w: _get(4), "formats.get(4)"),
             ("get name=list", lambda _w: _get(["hbfp4"]), "formats.get(['hbfp4'])"),
             ("parse_accumulator int", lambda _w: _acc(16), "parse_accumulator(16)"),
             ("parse_accumulator none", lambda _w: _acc(None), "parse_accumulator(None)"),
             ("matmul plan=None", _mm(ones, b64, plan=None), "matmul(A, B, 'hbfp4', plan=None)"),
             ("matmul plan=int", _mm(ones, b64, plan=5), "matmul(A, B, 'hbfp4', plan=5)"),
             ("matmul plan=[int]", _mm(ones, b64, plan=[5, (None, "fp32")]),
              "matmul(A, B, 'hbfp4', plan=[5, (None, 'fp32')])"),
             ("matmul plan-length=str", _mm(ones, b64, plan=[("64", "fixed16"), (None, "fp32")]),
              "matmul(A, B, 'hbfp4', plan=[('64', 'fixed16'), (None, 'fp32')])"),
             ("matmul plan-accumulator=int", _mm(ones, b64, plan=[(None, 32)]),
              "matmul(A, B, 'hbfp4', plan=[(None, 32)])"),
             ("matmul fmt_a=int", _mm(ones, b64, 7), "matmul(A, B, 7)"),
             ("matmul fmt_b=float", _mm(ones, b64, "hbfp4", 7.0), "matmul(A, B, 'hbfp4', 7.0)"),
             ("matmul operand_rounding=int", _mm(ones, b64, operand_rounding=1),
              "matmul(A, B, 'hbfp4', operand_rounding=1)"),
             ("matmul seed=str", _mm(ones, b64, seed="1"), "matmul(A, B, 'hbfp4', seed='1')"),
             ("matmul seed=float", _mm(ones, b64, seed=1.5), "matmul(A, B, 'hbfp4', seed=1.5)"),
             ("matmul stats=None", _mm(ones, b64, stats=None),
              "matmul(A, B, 'hbfp4', stats=None)"),
             ("matmul fast_path=str", _mm(ones, b64, fast_path="no"),
              "matmul(A, B, 'hbfp4', fast_path='no')"),
             ("matmul A=None", _mm(lambda np: None, b64), "matmul(None, B, 'hbfp4')"),
             ("matmul B=complex", _mm(ones, lambda np: np.ones((64, 3), complex)),
              "matmul(A, complex B, 'hbfp4')")]
    for label, call, desc in typed:
        yield api(g, label, call, desc + ": a TypeError", errors=("TypeError",))
    valued = [("matmul plan=empty-list", _mm(ones, b64, plan=[]), "matmul(A, B, 'hbfp4', plan=[])"),
              ("matmul seed=-1", _mm(ones, b64, seed=-1), "matmul(A, B, 'hbfp4', seed=-1)"),
              ("matmul stats=unknown", _mm(ones, b64, stats="all"),
               "matmul(A, B, 'hbfp4', stats='all')"),
              ("quantize axis=out-of-range", _quantize(ones, axis=2),
               "quantize(x, 'hbfp4', axis=2)")]
    for label, call, desc in valued:
        yield api(g, label, call, desc + ": a ValueError", errors=("ValueError",))

    g = "num-bounds capture-epochs"

    def manifest(capture: dict, epochs: list[int]) -> str:
        records = [{"id": i, "step": i, "epoch": e, "layer": "fc", "phase": "fwd", "m": 4,
                    "n": 4, "k": 8} for i, e in enumerate(epochs)]
        return json.dumps({"schema": "hbfpsim-trace/1", "model": "m", "capture": capture,
                           "records": records})

    def open_t(_w):
        from hbfpsim.trace import open as open_trace
        return open_trace("t")

    def weights(_w):
        from hbfpsim.replay.run import epoch_weights
        return epoch_weights(open_t(_w))

    outside = [("epoch=epochs", {"epochs": 30}, [0, 30]),
               ("epoch-beyond", {"epochs": 2}, [0, 1, 7]),
               ("not-captured", {"epochs": 30, "captured_epochs": [0, 15, 29]}, [0, 14]),
               ("not-in-list", {"epochs": [5]}, [5, 4])]
    for label, capture, epochs in outside:
        yield api(g, f"open {label}", open_t, f"trace.open(capture {capture}, epochs {epochs})",
                  manifest_dir("t", manifest(capture, epochs)))
        yield cli(g, f"trace info {label}", ["trace", "info", "t"],
                  manifest_dir("t", manifest(capture, epochs)))
    inside = [("captured", {"epochs": 30, "captured_epochs": [0, 15, 29]}, [0, 15, 29],
               {0: 15, 15: 14, 29: 1}),
              ("epochs-list", {"epochs": [5]}, [5], {5: 1}),
              ("free-form", {"epochs": "x"}, [0, 3], {0: 3, 3: 1})]
    for label, capture, epochs, want in inside:
        yield api(g, f"weights {label}", weights, f"epoch_weights(capture {capture}) == {want}",
                  manifest_dir("t", manifest(capture, epochs)),
                  expect=lambda v, want=want: v == want)

    def writer(_w):
        from hbfpsim.trace import TraceWriter
        w = TraceWriter("w", "m", capture={"epochs": 2})
        w.add("fc", "fwd", 2, 2, 4, epoch=2)
        return w.close()

    yield api(g, "writer epoch=epochs", writer,
              "TraceWriter(capture={'epochs': 2}).add(epoch=2).close()")
    yield cli(g, "run epoch=epochs", ["run", "r.toml", "--no-plots", "--quiet"],
              steps(write("r.toml", runfile_text()), tiny_trace(capture={"epochs": 1})))

    g = "num-bounds rules"
    argv = ["run", "r.toml", "--no-plots", "--quiet"]
    for label, raw, verdict in (("literal-reversed", "[5, 2]", "error"),
                                ("last-0", '["last", 0]', "error"),
                                ("100%-last", '["100%", "last"]', "error"),
                                ("50%-0", '["50%", 0]', "error"),
                                ("last-last-1", '["last", "last-1"]', "error"),
                                ("last-1-last", '["last-1", "last"]', LEGAL),
                                ("50%-last", '["50%", "last"]', LEGAL),
                                ("0-last", '[0, "last"]', LEGAL)):
        yield cli(g, f"epochs={label}", argv, run_setup(runfile_text(rule={"epochs": raw})),
                  **expectation(verdict, run_ok()))

    def schedule_check(key, ends, **context):
        def call(_w):
            from hbfpsim.format_schedule import Rule, RunContext, Schedule
            from hbfpsim.numerics import Numerics
            n = Numerics.create("hbfp4")
            Schedule("s", n, (Rule(Numerics.create("hbfp6"), **{key: ends}),)).check(
                RunContext(**context))
            return "checked"
        return call

    for key, ends, context, verdict in (
            ("epochs", (5, 2), {}, "error"), ("steps", (4, 1), {}, "error"),
            ("epochs", ("last", 0), {"last_epoch": 9}, "error"),
            ("epochs", ("50%", 3), {"last_epoch": 9}, "error"),
            ("steps", ("last", "last-3"), {"last_step": 99}, "error"),
            ("steps", ("99%", "last"), {"last_step": 99}, LEGAL),
            ("epochs", ("last", 0), {}, LEGAL)):            # unresolved: left to matching
        yield api(g, f"check {key}={list(ends)} {context}", schedule_check(key, ends, **context),
                  f"Schedule(rule {key}={ends}).check(RunContext(**{context}))",
                  **expectation(verdict, lambda v: v == "checked"))


def boundary_environment() -> Iterator[Case]:
    """A closed standard output, no writable home or cache, stale temporary siblings, parent
    folders of a failed write."""
    g = "env-bounds"
    fast = ["--no-plots", "--quiet"]
    no_pid = 4194304                      # above Linux's largest pid_max: never a process
    gemm = ["gemm", "array32", "64", "64", "64"]

    def spawn(work: Path, args: list[str], env: dict[str, str] | None = None,
              stdout: str = "pipe", shell: str | None = None, stderr: bool = True
              ) -> tuple[int, str, str]:
        """(status, stdout, stderr) of ``python -m hbfpsim ARGS`` (or ``bash -c SHELL``) run
        in ``work`` with ``env`` added; ``stdout``: "pipe", "closed" or "read-only";
        ``stderr`` False: closed."""
        cmd = ["bash", "-c", shell] if shell else [sys.executable, "-m", "hbfpsim", *args]
        closed = ([1] if stdout == "closed" else []) + ([] if stderr else [2])
        with open(os.devnull, "rb") as read_only:
            done = subprocess.run(
                cmd, cwd=work, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                stdout={"pipe": subprocess.PIPE, "closed": None, "read-only": read_only}[stdout],
                stderr=subprocess.PIPE if stderr else None, text=True, timeout=150,
                preexec_fn=(lambda: [os.close(fd) for fd in closed]) if closed else None)
        return done.returncode, done.stdout or "", done.stderr or ""

    def one_line(err: str, prefix: str) -> bool:
        lines = err.splitlines()
        return len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in err

    def refused(r: tuple[int, str, str]) -> bool:
        return r[0] == 2 and not r[1] and one_line(r[2], "hbfpsim: error: ")

    # --- a standard output that is closed or cannot be written: one line, status 2
    for label, args in (("formats", ["formats"]), ("help", ["--help"]), ("gemm", gemm),
                        ("usage-error", ["gemm", "x"])):
        yield api(g, f"stdout-closed-{label}",
                  lambda work, args=args: spawn(work, args, stdout="closed"),
                  f"hbfpsim {' '.join(args)} with fd 1 closed", expect=refused, timeout=180)
    shell = f"{shlex.quote(sys.executable)} -m hbfpsim formats >&-"
    yield api(g, "stdout-closed-by-the-shell", lambda work: spawn(work, [], shell=shell),
              "bash -c 'hbfpsim formats >&-'", expect=refused, timeout=180)
    yield api(g, "stdout-read-only", lambda work: spawn(work, ["formats"], stdout="read-only"),
              "hbfpsim formats 1</dev/null", expect=refused, timeout=180)
    yield api(g, "stderr-closed-error", lambda work: spawn(work, ["formats", "fp7"],
                                                           stderr=False),
              "hbfpsim formats fp7 2>&-", expect=lambda r: r[0] == 2 and r[1] == "",
              timeout=180)
    yield api(g, "stdout-and-stderr-closed", lambda work: spawn(work, ["formats"],
                                                                stdout="closed", stderr=False),
              "hbfpsim formats >&- 2>&-", expect=lambda r: r[0] == 2, timeout=180)

    # --- numba cannot cache where the environment says: one warning, the same answer
    def cached_elsewhere(warning: str) -> Callable[[tuple], bool]:
        def check(r: tuple[int, str, str, str]) -> bool:
            return r[0] == 0 and r[1] == r[3] and "cycles" in r[1] and one_line(
                r[2], f"hbfpsim: warning: {warning}")
        return check

    def gemm_in(env: Callable[[Path], dict[str, str]]) -> Callable[[Path], tuple]:
        """The gemm in ``env(work)`` and in the usual environment: (status, out, err, the
        usual out)."""
        def call(work: Path) -> tuple[int, str, str, str]:
            usual = spawn(work, gemm)[1]
            return (*spawn(work, gemm, env=env(work)), usual)
        return call

    def blocked_cache(work: Path) -> dict[str, str]:
        return {"NUMBA_CACHE_DIR": str(work / "a-file" / "cache"), "TMPDIR": str(work / "tmp")}

    yield api(g, "numba-cache-dir-under-a-file", gemm_in(blocked_cache),
              "NUMBA_CACHE_DIR=a-file/cache hbfpsim gemm array32 64 64 64",
              setup=steps(write("a-file", "not a folder\n"), mkdir("tmp", with_file=False)),
              expect=cached_elsewhere("NUMBA_CACHE_DIR cannot be written"), timeout=300)

    def read_only_install(work: Path) -> None:
        package = work / "site" / "hbfpsim"
        shutil.copytree(REPO / "hbfpsim", package, ignore=shutil.ignore_patterns("__pycache__"))
        for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
            (folder / "__pycache__").write_text("")     # no cache folder can be made beside
        (work / "a-file").write_text("not a folder\n")
        (work / "tmp").mkdir()

    def no_home(work: Path) -> dict[str, str]:
        home = str(work / "a-file" / "home")
        return {"PYTHONPATH": str(work / "site"), "HOME": home, "XDG_CACHE_HOME": home,
                "TMPDIR": str(work / "tmp")}

    yield api(g, "read-only-install-without-a-home", gemm_in(no_home),
              "HOME=a-file/home hbfpsim gemm array32 64 64 64, the package read-only",
              setup=read_only_install, timeout=300,
              expect=cached_elsewhere("numba's cache folders cannot be written"))

    def read_only_cache(work: Path) -> None:
        (work / "ro").mkdir()
        (work / "ro").chmod(0o500)          # root writes there all the same: no warning
        (work / "tmp").mkdir()

    def ro_env(work: Path) -> dict[str, str]:
        return {"NUMBA_CACHE_DIR": str(work / "ro" / "cache"), "TMPDIR": str(work / "tmp")}

    def read_only_ok(r: tuple[int, str, str, str]) -> bool:
        if os.geteuid() == 0:
            return r[0] == 0 and r[1] == r[3] and r[2] == ""
        return cached_elsewhere("NUMBA_CACHE_DIR cannot be written")(r)

    yield api(g, "numba-cache-dir-read-only", gemm_in(ro_env),
              "NUMBA_CACHE_DIR=ro/cache (ro: mode 0500) hbfpsim gemm array32 64 64 64",
              setup=read_only_cache, expect=read_only_ok, timeout=300)

    # --- a failed write leaves none of the parent folders it made
    stops = GOOD_SCRIPT.replace(
        "model(torch.randn(2, 8)).sum().backward()\n",
        "model(torch.randn(2, 8)).sum().backward()\n"
        "            raise ValueError('the script stops mid-capture')\n")
    yield cli(g, "capture-fails-into-new-parents", ["capture", "s.py", "--out", "new/nested/t"],
              write("s.py", stops), timeout=120)
    yield cli(g, "capture-fails-into-half-new-parents",
              ["capture", "s.py", "--out", "new/nested/t"],
              steps(write("s.py", stops), mkdir("new", with_file=False)), timeout=120)

    def trace_fails(work: Path) -> None:
        from hbfpsim.trace import TraceWriter
        with TraceWriter(work / "new" / "nested" / "t", "mlp") as writer:
            writer.add("fc", "fwd", 4, 4, 4)
            writer.add("fc", "fwd", 0, 4, 4)                # m = 0: refused

    yield api(g, "trace-writer-fails-into-new-parents", trace_fails,
              "TraceWriter('new/nested/t'), a bad record")

    def staged_fails(kind: str) -> Callable[[Path], None]:
        def call(work: Path) -> None:
            from hbfpsim import staging
            stage = staging.staged_dir if kind == "dir" else staging.staged_file
            with stage(work / "new" / "nested" / "out.csv") as tmp:
                if kind == "file":
                    tmp.write_text("half\n")
                raise ValueError("the write is refused later (a full disk, say)")
        return call

    for kind in ("dir", "file"):
        yield api(g, f"staged-{kind}-fails-into-new-parents", staged_fails(kind),
                  f"staged_{kind}('new/nested/out.csv'), the body raises")

    # --- siblings a killed command left: removed when their process has ended, else kept
    def sibling_check(base: Callable[[Result], bool], gone: Iterable[str] = (),
                      kept: Iterable[str] = (), absent: Iterable[str] = ()
                      ) -> Callable[[Result], bool]:
        gone, kept, absent = tuple(gone), tuple(kept), tuple(absent)

        def check(r: Result) -> bool:
            return (base(r) and not any((r.dir / n).exists() for n in gone + absent)
                    and all((r.dir / n).exists() for n in kept))
        return check

    stale = f".out.tmp-{no_pid}"
    yield cli(g, "run-removes-stale-tmp", ["run", "r.toml", *fast],
              run_setup(runfile_text(), mkdir(stale)),
              expect=sibling_check(run_ok(files=["out/run.json"]), gone=[stale]), timeout=120)
    yield cli(g, "run-keeps-tmp-of-running-process", ["run", "r.toml", *fast],
              run_setup(runfile_text(), mkdir(".out.tmp-1")),       # pid 1 always runs
              expect=sibling_check(run_ok(files=["out/run.json"]), kept=[".out.tmp-1"]),
              timeout=120)
    old = f".out.old-{no_pid}"
    yield cli(g, "run-force-over-set-aside-old", ["run", "r.toml", *fast, "--force"],
              run_setup(runfile_text(), mkdir(old), mkdir(stale)),
              expect=sibling_check(run_ok(files=["out/run.json"]), gone=[old, stale],
                                   absent=["out/keep.txt"]), timeout=120)
    figure = f".area.tmp-{no_pid}.png"
    yield cli(g, "plot-removes-stale-tmp", ["plot", "area", "fp32", "hbfp4", "--out", "area.png"],
              write(figure, b"half a figure"),
              expect=sibling_check(ok("wrote", files=["area.png"]), gone=[figure]))
    other = f".other.tmp-{no_pid}.png"
    yield cli(g, "plot-keeps-other-outputs-tmp",
              ["plot", "area", "fp32", "hbfp4", "--out", "area.png"], write(other, b"not mine"),
              expect=sibling_check(ok("wrote", files=["area.png"]), kept=[other]))


SECTIONS: tuple[Callable[[], Iterable[Case]], ...] = (
    top_level, formats_command, gemm_command, config_keys, trace_info_command,
    import_scalesim_command, capture_command, density_command, plot_command,
    plot_figures_command, cost_command, rtl_command, run_command, sweep_command, train_command,
    advise_command, signal_cases, api_quantize, api_formats_get, api_accumulators,
    api_matmul, api_array, api_trace, api_replay_and_schedule, api_train, api_cost,
    boundary_training, boundary_sweep_spec, boundary_sweep_run, boundary_numerics,
    boundary_environment)


def cases() -> list[Case]:
    """The whole catalogue, in order, by command."""
    return [case for section in SECTIONS for case in section()]


# =============================================================================================
# Running the catalogue
# =============================================================================================

def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels once, before cases time out on it."""
    code = ("import numpy as np\n"
            "from hbfpsim import formats, matmul, quantize\n"
            "x = np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32)\n"
            "for name in formats.STANDARD:\n"
            "    quantize(x, name); quantize(x, name, rounding='stochastic', seed=1)\n"
            "matmul(x, x.T.copy(), 'hbfp4', plan='fixed13*32 > fp32')\n"
            "matmul(x, x.T.copy(), 'fp8_e4m3', plan='e5m10*64 > e5m10', fast_path=False)\n"
            "from hbfpsim.array import load, simulate\n"
            "simulate(load('array32'), 64, 64, 64, engine='simpy')\n")
    subprocess.run([sys.executable, "-c", code], cwd=tempfile.gettempdir(), timeout=900,
                   capture_output=True, check=False)


def run_all(selected: list[Case], jobs: int = 2,
            progress: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
    """Classify every case of ``selected`` with ``jobs`` workers; outcomes in catalogue order."""
    results: dict[str, Outcome] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_case, case): case for case in selected}
        for future in concurrent.futures.as_completed(futures):
            outcome = future.result()
            results[outcome.name] = outcome
            if progress is not None:
                progress(len(results), outcome)
    return [results[case.name] for case in selected]


def report(outcomes: list[Outcome]) -> str:
    """One line per non-clean case (grouped by outcome, then command) and the counts."""
    lines = []
    by: dict[str, dict[str, list[Outcome]]] = defaultdict(lambda: defaultdict(list))
    for o in outcomes:
        if o.outcome != "clean":
            by[o.outcome][o.group].append(o)
    for outcome in OUTCOMES[1:]:
        for group, items in sorted(by[outcome].items()):
            for o in items:
                note = f"  [{'; '.join(o.notes)}]" if o.notes else ""
                lines.append(f"{o.outcome:9}  {o.name}  ::  {o.call}  ->  {o.detail}{note}")
    counts = Counter(o.outcome for o in outcomes)
    lines += ["", f"{'tried':12} {len(outcomes):5d}"]
    for outcome, label in (("clean", "clean"), ("traceback", "traceback"), ("hang", "hang"),
                           ("silent", "silent wrong"), ("debris", "debris"),
                           ("messy", "messy error")):
        lines.append(f"{label:12} {counts[outcome]:5d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the hostile-input catalogue of hbfpsim.")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--filter", default="", help="only cases whose name holds SUBSTR")
    parser.add_argument("--list", action="store_true", help="list the cases and stop")
    parser.add_argument("--json", help="also write every outcome to this JSON file")
    args = parser.parse_args(argv)
    selected = [c for c in cases() if args.filter in c.name]
    if args.list:
        for case in selected:
            print(f"{case.name}  ::  {case.describe()}")
        print(f"{len(selected)} cases")
        return 0
    start, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    warm_up()
    total = len(selected)

    def progress(done: int, o: Outcome) -> None:
        if sys.stderr.isatty():
            print(f"\r{done}/{total} {o.name[:70]:70}", end="", file=sys.stderr, flush=True)

    outcomes = run_all(selected, args.jobs, progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    print(report(outcomes))
    children = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(f"CPU time     {children:.1f} s in the case processes (+{me.ru_utime + me.ru_stime:.1f}"
          f" s here), {time.monotonic() - start:.0f} s wall, {args.jobs} jobs")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return 0 if all(o.outcome == "clean" for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
