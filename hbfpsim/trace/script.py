"""Run a user's capture script: a Python file defining ``main(capture)``, where
``capture(model, **options)`` opens a ``trace.capture`` context writing to one folder.

The script's failures become one-line errors naming its file and line (its traceback stays
out of the way of the command line's one-line contract), and a failed or exiting script
leaves no trace behind, even one it finished before failing.
"""

from __future__ import annotations

import runpy
import shutil
import traceback
from pathlib import Path

from hbfpsim.staging import check_free
from hbfpsim.trace import pytorch


def run_capture_script(script: Path, out: str | Path, options: dict, force: bool = False
                       ) -> Path:
    """Run ``script``'s ``main(capture)``; ``options`` (steps, layers, max_bytes) are the
    defaults of every ``capture(model, ...)`` call. Returns the trace folder written."""
    check_free(out, force, inputs=[script])
    made: list[pytorch.Capture] = []

    def capture(model, *positional, **kw) -> pytorch.Capture:
        if positional:
            raise ValueError("capture(model, **options): options are keywords (steps=, "
                             "layers=, max_bytes=, ...)")
        made.append(pytorch.Capture(out, model, **{**options, "force": force, **kw}))
        return made[-1]

    def written() -> bool:
        return any(c.writer is not None and c.writer.written for c in made)

    try:
        main = runpy.run_path(str(script), run_name="__hbfpsim_capture__").get("main")
        if not callable(main):
            raise ValueError(f"{script}: a capture script must define main(capture)")
        main(capture)
    except BaseException as err:
        if written():
            shutil.rmtree(out, ignore_errors=True)   # a failed command leaves no output
        if isinstance(err, (ValueError, OSError, KeyboardInterrupt)):
            raise
        if isinstance(err, SystemExit):
            raise ValueError(f"{script}: exited (sys.exit({err.code!r})) before main(capture) "
                             "returned") from None
        raise ValueError(f"{script}{_line(err, script)}: {type(err).__name__}: {err}") from None
    if not written():
        raise ValueError(f"{script}: main(capture) wrote no trace (run the training inside "
                         "`with capture(model) as cap:`)")
    return Path(out)


def _line(err: BaseException, script: Path) -> str:
    """", line N" of the last frame of ``err``'s traceback inside ``script``, or ""."""
    lines = [f.lineno for f in traceback.extract_tb(err.__traceback__)
             if Path(f.filename).resolve() == script.resolve()]
    return f", line {lines[-1]}" if lines else ""
