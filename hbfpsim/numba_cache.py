"""A folder numba can write hbfpsim's compiled kernels to, settled before numba is imported.

numba writes each ``cache=True`` kernel to ``NUMBA_CACHE_DIR`` when that is set, else to the
``__pycache__`` folder beside the kernel's module, else to the user's cache folder
(``$XDG_CACHE_HOME/numba``, by default ``~/.cache/numba``, on Linux); when it can write to
none of them, defining the kernel raises an error, and every command that computes fails. A
package installed read-only for a user without a writable home is such a case, as is a
``NUMBA_CACHE_DIR`` naming a folder that cannot be made or written.

``install`` (called by ``hbfpsim/__init__.py``) puts a finder on ``sys.meta_path`` that finds
nothing: on the first import of numba it runs ``ensure`` once and takes itself off, so the
imports that load no numba (a configuration, a trace, ``hbfpsim --help``) pay for nothing.
``ensure`` tries the folder numba would use, as numba does (making it and creating a file
in it); when that fails it sets ``NUMBA_CACHE_DIR`` to a folder of the temporary folder
private to the user (``hbfpsim-numba-cache-UID``, or a new one for this process alone when
that one is someone else's or not private) and warns once, one line. Processes started
later inherit the setting. This module imports nothing from hbfpsim, so every layer may use
it.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:                         # pathlib is loaded when the check runs, not before
    from pathlib import Path


def _writable(folder: Path) -> str | None:
    """None when numba can cache in ``folder`` (it is made if missing and a file can be
    created in it), else why not (one line)."""
    import tempfile
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        return f"{folder}: {err.strerror or err}"
    return None


def _user_cache() -> Path:
    """numba's user-wide cache folder (its ``AppDirs("numba").user_cache_dir``)."""
    from pathlib import Path
    if sys.platform == "darwin":
        return Path(os.path.expanduser("~/Library/Caches")) / "numba"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", os.path.expanduser("~"))) / "numba" / "Cache"
    return Path(os.getenv("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))) / "numba"


def _kernel_folders() -> list[Path]:
    """The package's folders of modules (the root and every subpackage): numba caches the
    kernels of each in its ``__pycache__``."""
    from pathlib import Path
    package = Path(__file__).resolve().parent
    folders = [package]
    try:
        folders += sorted(Path(entry.path) for entry in os.scandir(package)
                          if entry.is_dir() and (Path(entry.path) / "__init__.py").is_file())
    except OSError:
        pass
    return folders


def _problem() -> str | None:
    """None when numba can cache hbfpsim's kernels where the environment says, else why it
    cannot (one line)."""
    from pathlib import Path
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        why = _writable(Path(configured))
        return None if why is None else f"NUMBA_CACHE_DIR cannot be written ({why})"
    blocked = [why for folder in _kernel_folders()
               if (why := _writable(folder / "__pycache__")) is not None]
    if not blocked:
        return None
    why = _writable(_user_cache())          # numba's next choice for the folders it can't use
    if why is None:
        return None
    return f"numba's cache folders cannot be written ({blocked[0]}; {why})"


def _private_temp() -> Path:
    """A folder of the temporary folder that only this user can write: the shared
    ``hbfpsim-numba-cache-UID`` (kept from run to run), or, when that is not a private
    folder of this user, a new one removed when this process ends. OSError when the
    temporary folder cannot be written either."""
    import tempfile
    from pathlib import Path
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    folder = Path(tempfile.gettempdir()) / f"hbfpsim-numba-cache-{uid}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return _own_temp()
    try:
        st = folder.lstat()
    except OSError:
        return _own_temp()
    import stat
    private = (stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o022
               and (not hasattr(os, "getuid") or st.st_uid == os.getuid()))
    if private and _writable(folder) is None:
        return folder
    return _own_temp()


def _own_temp() -> Path:
    """A new private folder of the temporary folder, removed when this process ends."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path
    folder = Path(tempfile.mkdtemp(prefix="hbfpsim-numba-cache-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def ensure() -> Path | None:
    """Check that numba can write its cache where the environment says; when it cannot, set
    ``NUMBA_CACHE_DIR`` to a private folder of the temporary folder (telling an imported
    numba to read its settings again) and warn, one line. Returns that folder, or None when
    nothing was changed. OSError (one line) when no folder can be written at all."""
    why = _problem()
    if why is None:
        return None
    try:
        folder = _private_temp()
    except OSError as err:
        raise OSError(f"{why}, and no temporary folder can be written either "
                      f"({err.strerror or err}): set NUMBA_CACHE_DIR to a writable folder"
                      ) from None
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.reload_config()
    warnings.warn(f"{why}; numba caches hbfpsim's compiled kernels in {folder} instead",
                  stacklevel=2)
    return folder


class _BeforeNumba:
    """A finder that finds nothing: on the first import of numba it runs ``ensure`` and
    takes itself off ``sys.meta_path``."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "numba":
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            ensure()
        return None


def install() -> None:
    """Run ``ensure`` before numba is first imported (now, when it has been already)."""
    if "numba" in sys.modules:
        ensure()
    elif not any(isinstance(finder, _BeforeNumba) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BeforeNumba())


__all__ = ["ensure", "install"]
