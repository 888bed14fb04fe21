"""Outputs appear whole or not at all: every file and folder hbfpsim writes is built under a
temporary sibling name and renamed into place when complete.

A failed or interrupted command (an exception, Ctrl-C, SIGTERM turned into an exception)
leaves the previous output untouched and removes its temporary sibling and the parent folders
it made for the output. A process killed outright (SIGKILL, power loss) can leave a hidden
``.NAME.tmp-PID`` (or ``.NAME.old-PID``) sibling, never a half-written output under the real
name; the next command that writes NAME removes the siblings of processes that have ended
(``clear_stale``). This module imports nothing from hbfpsim, so every layer may use it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def as_path(value: object, what: str) -> Path:
    """``value`` (a str or os.PathLike naming a file or folder) as a Path; anything else is
    a TypeError naming ``what``."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        path = Path(value)
        if isinstance(os.fspath(path), str):
            return path
    raise TypeError(f"{what} must be a path (str or os.PathLike), got {value!r:.80}")


def check_free(out: str | Path, force: bool = False, file: bool = False,
               inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse, before any work, an output that exists (unless ``force``), a folder where a
    ``file`` goes or anything else where a folder goes, one whose nearest existing parent is
    not a folder, and one that is or holds the working folder or any of ``inputs`` (what
    the command reads: replacing it would destroy it). The temporary siblings of ``out``
    that ended processes left are cleared first (``clear_stale``). Returns ``out``."""
    out = as_path(out, "output")
    if out.name in ("", ".", ".."):
        raise ValueError(f"{str(out)!r}: not a file or folder name to write")
    clear_stale(out)
    target, here = _resolved(out), Path.cwd()
    for keep in (here, *map(Path, inputs)):
        folder = keep.is_dir() and _resolved(keep) != here   # inside the working folder: fine
        keep = _resolved(keep)
        inside = folder and target.exists() and keep in target.parents
        if target == keep or target in keep.parents or inside:
            raise ValueError(f"{out}: would replace {keep} or part of it, which this command "
                             "reads (or the working folder); choose another output")
    if out.is_symlink() or out.exists():
        if file and out.is_dir():
            raise IsADirectoryError(f"{out}: is a folder, not a file to replace")
        if not file and not out.is_dir():
            raise FileExistsError(f"{out}: exists and is not a folder")
        if not force:
            raise FileExistsError(f"{out}: already exists (use --force to replace it)")
    existing = next(p for p in out.absolute().parents if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"{out}: {existing} is not a folder")
    return out


def _resolved(path: Path) -> Path:
    """``path`` with links resolved; a link loop resolves as far as it can."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _tmp_sibling(out: Path, tag: str) -> Path:
    """``.NAME.TAG-PID`` beside ``out``, keeping its suffix (writers pick a format by it)."""
    return out.parent / f".{out.stem}.{tag}-{os.getpid()}{out.suffix}"


def _ended(pid: int) -> bool:
    """Whether no process ``pid`` runs (on this machine). A process of another user, a pid
    that cannot be asked about and every pid on Windows (where ``os.kill`` would end it)
    count as running."""
    if os.name == "nt" or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):        # PermissionError: another user's process
        return False
    return False


def clear_stale(out: str | Path) -> list[Path]:
    """Remove the hidden ``.NAME.tmp-PID`` and ``.NAME.old-PID`` siblings of ``out`` whose
    process has ended (killed outright while writing ``out``); a sibling of a running
    process, this one included, is left alone. An ``.old`` sibling is the previous output,
    set aside by a process killed between its two renames: when ``out`` is missing it is
    put back as ``out`` (the newest, if several) instead of being removed. Returns the
    siblings removed or put back."""
    out = as_path(out, "output")
    pattern = re.compile(rf"\.{re.escape(out.stem)}\.(tmp|old)-([0-9]{{1,10}})"
                         rf"{re.escape(out.suffix)}")
    try:
        names = [entry.name for entry in os.scandir(out.parent)]
    except OSError:                          # no parent folder yet, or unreadable: no siblings
        return []
    stale = [(m[1], out.parent / m[0]) for m in map(pattern.fullmatch, names)
             if m and int(m[2]) != os.getpid() and _ended(int(m[2]))]
    olds = sorted((p for tag, p in stale if tag == "old"), key=_mtime)
    if olds and not (out.is_symlink() or out.exists()):
        try:
            olds.pop().rename(out)
        except OSError:
            pass
    for _, path in stale:
        _remove(path)
    return [path for _, path in stale]


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _make_parents(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; returns those this call made, outermost
    first (a folder another process makes meanwhile is not among them)."""
    missing = []
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made: list[Path] = []
    try:
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue
            made.append(path)
    except BaseException:
        _remove_empty(made)
        raise
    return made


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders of ``made`` (outermost first, as ``_make_parents`` returns them),
    innermost first, each only if it is empty."""
    for path in reversed(made):
        try:
            path.rmdir()
        except OSError:                      # not empty (someone wrote there) or gone
            break


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_symlink() or path.exists():
        path.unlink(missing_ok=True)


def _replace(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; an existing ``out`` is set aside and put back on failure."""
    if not (out.is_symlink() or out.exists()):
        tmp.rename(out)
        return
    old = _tmp_sibling(out, "old")
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    _remove(old)


@contextmanager
def staged_dir(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; when the block ends normally it
    becomes ``out`` (replacing an existing one only with ``force``), otherwise it is
    removed, and so are the parent folders of ``out`` made for it (those still empty)."""
    out = check_free(out, force)
    made = _make_parents(out.parent)
    tmp = _tmp_sibling(out, "tmp")
    done = False
    try:
        _remove(tmp)
        tmp.mkdir()
        yield tmp
        _replace(tmp, out)
        done = True
    finally:
        _remove(tmp)
        if not done:
            _remove_empty(made)


@contextmanager
def staged_file(out: str | Path, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside the file ``out``; when the block ends normally the file
    written there replaces ``out``, otherwise it is removed, and so are the parent folders
    of ``out`` made for it (those still empty). Files are replaced by default (as a plot or
    an export is); pass ``force=False`` to refuse an existing one."""
    out = check_free(out, force, file=True)
    made = _make_parents(out.parent)
    tmp = _tmp_sibling(out, "tmp")
    done = False
    try:
        _remove(tmp)
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{out}: nothing was written")
        _replace(tmp, out)
        done = True
    finally:
        _remove(tmp)
        if not done:
            _remove_empty(made)


__all__ = ["as_path", "check_free", "clear_stale", "staged_dir", "staged_file"]
