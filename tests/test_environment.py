"""The environment a command runs in, and what an ended command leaves behind.

A closed or unwritable standard output is a one-line error (status 2), never a traceback;
a folder numba cannot cache in (a ``NUMBA_CACHE_DIR`` that cannot be made, a read-only
install without a writable home) is replaced by a private temporary folder with one
warning, and the answer is the same; a failed write removes the parent folders it made (only
those, only when empty); the next write of NAME removes the ``.NAME.tmp-PID`` and
``.NAME.old-PID`` siblings of processes that have ended, never those of running ones.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hbfpsim import cli, numba_cache, staging

ROOT = Path(__file__).resolve().parents[1]
NO_PID = 4194304                          # above Linux's largest pid_max: never a process
GEMM = ["gemm", "array32", "64", "64", "64"]


def hbfpsim(args: list[str], cwd: Path, env: dict[str, str] | None = None,
            **kw) -> subprocess.CompletedProcess:
    """``python -m hbfpsim ARGS`` in ``cwd``, with ``env`` added to the environment."""
    return subprocess.run([sys.executable, "-m", "hbfpsim", *args], cwd=cwd, text=True,
                          stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
                          timeout=300, **kw)


def one_line(text: str, prefix: str) -> bool:
    lines = text.splitlines()
    return len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in text


def ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


# --- standard output --------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["formats"], ["--help"], ["--version"], GEMM[:1] + ["x"]])
def test_closed_standard_output_is_one_line_error(args, tmp_path):
    """``hbfpsim ARGS >&-``: nothing can be printed, so status 2 and one line on stderr."""
    done = hbfpsim(args, tmp_path, preexec_fn=lambda: os.close(1))
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr, "hbfpsim: error: standard output is closed"), done.stderr


def test_closed_standard_output_from_a_shell(tmp_path):
    done = subprocess.run(["bash", "-c", f"{sys.executable} -m hbfpsim formats >&-"],
                          cwd=tmp_path, text=True, stderr=subprocess.PIPE, timeout=120)
    assert done.returncode == 2 and one_line(done.stderr, "hbfpsim: error:"), done.stderr


def test_standard_output_open_for_reading_is_one_line_error(tmp_path):
    with open(os.devnull, "rb") as read_only:
        done = hbfpsim(["formats"], tmp_path, stdout=read_only)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr, "hbfpsim: error: cannot write to standard output"), \
        done.stderr


def test_closed_standard_error_keeps_errors_off_standard_output(tmp_path):
    """``hbfpsim formats fp7 2>&-``: the error goes nowhere, not into the output."""
    bad = hbfpsim(["formats", "fp7"], tmp_path, stdout=subprocess.PIPE,
                  preexec_fn=lambda: os.close(2))
    assert bad.returncode == 2 and bad.stdout == ""
    good = hbfpsim(["formats", "fp32"], tmp_path, stdout=subprocess.PIPE,
                   preexec_fn=lambda: os.close(2))
    assert good.returncode == 0 and good.stdout.split()[:2] == ["format", "family"]


def test_closed_standard_output_in_process(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", None)
    assert cli.main(["formats"]) == 2
    assert one_line(capsys.readouterr().err, "hbfpsim: error: standard output is closed")


def test_a_closed_pipe_still_ends_quietly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "hbfpsim", "formats"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                                   # the reader has gone
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == b""


# --- numba's cache ----------------------------------------------------------------------------

def blocked(tmp_path: Path) -> Path:
    """A path no one can make a folder at, root included: it lies under a regular file."""
    (tmp_path / "a-file").write_text("not a folder\n")
    return tmp_path / "a-file" / "cache"


@pytest.fixture(scope="module")
def gemm_answer(tmp_path_factory) -> str:
    """What ``hbfpsim gemm array32 64 64 64`` prints in the usual environment."""
    done = hbfpsim(GEMM, tmp_path_factory.mktemp("usual"), stdout=subprocess.PIPE)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_unwritable_numba_cache_dir_falls_back_with_one_warning(tmp_path, gemm_answer):
    temp = tmp_path / "temp"
    temp.mkdir()
    done = hbfpsim(GEMM, tmp_path, stdout=subprocess.PIPE,
                   env={"NUMBA_CACHE_DIR": str(blocked(tmp_path)), "TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    assert one_line(done.stderr, "hbfpsim: warning: NUMBA_CACHE_DIR cannot be written")
    assert done.stdout == gemm_answer
    fallback = temp / f"hbfpsim-numba-cache-{os.getuid()}"
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700
    assert any(fallback.rglob("*.nbi"))                   # the kernels are cached there


def test_read_only_install_without_a_home_falls_back_with_one_warning(tmp_path, gemm_answer):
    """No ``__pycache__`` beside the modules can be made (each name is a file: a read-only
    install, for root too) and neither home nor XDG cache folder exists."""
    package = tmp_path / "site" / "hbfpsim"
    shutil.copytree(ROOT / "hbfpsim", package, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (folder / "__pycache__").write_text("")
    temp = tmp_path / "temp"
    temp.mkdir()
    home = blocked(tmp_path)
    done = hbfpsim(GEMM, tmp_path, stdout=subprocess.PIPE,
                   env={"PYTHONPATH": str(package.parent), "PYTHONDONTWRITEBYTECODE": "1",
                        "HOME": str(home), "XDG_CACHE_HOME": str(home), "TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    assert one_line(done.stderr, "hbfpsim: warning: numba's cache folders cannot be written")
    assert str(package) in done.stderr                    # it ran the copy
    assert done.stdout == gemm_answer


def test_a_writable_cache_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    assert numba_cache._problem() is None
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocked(tmp_path)))
    assert "NUMBA_CACHE_DIR cannot be written" in numba_cache._problem()


def test_the_fallback_folder_is_private(tmp_path, monkeypatch):
    """A shared ``hbfpsim-numba-cache-UID`` that others may write to is not used: this
    process gets a new folder of its own."""
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shared = tmp_path / f"hbfpsim-numba-cache-{os.getuid()}"
    assert numba_cache._private_temp() == shared
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700
    shared.chmod(0o777)
    own = numba_cache._private_temp()
    assert own != shared and own.parent == tmp_path and own.name.startswith(shared.name[:20])
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
    shared.rmdir()
    shared.symlink_to(own)
    assert numba_cache._private_temp() not in (shared, own)


def test_the_check_runs_on_numba_import_only(tmp_path):
    """``import hbfpsim`` only puts the finder in place; importing numba takes it off."""
    probe = ("import sys, hbfpsim\n"
             "mine = lambda: [f for f in sys.meta_path if type(f).__name__ == '_BeforeNumba']\n"
             "print(len(mine()), 'numba' in sys.modules)\n"
             "import numba\n"
             "print(len(mine()))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, text=True,
                          capture_output=True, timeout=120, check=True)
    assert done.stdout.split() == ["1", "False", "0"] and done.stderr == ""


# --- parent folders of a failed write -----------------------------------------------------------

@pytest.mark.parametrize("stage", [staging.staged_dir, staging.staged_file])
def test_a_failed_write_removes_the_parents_it_made(stage, tmp_path):
    out = tmp_path / "new" / "nested" / "folder" / "out.csv"
    with pytest.raises(ValueError, match="refused"):
        with stage(out) as tmp:
            assert tmp.parent == out.parent and tmp.parent.is_dir()
            raise ValueError("refused later")
    assert not (tmp_path / "new").exists() and tmp_path.is_dir()


@pytest.mark.parametrize("stage", [staging.staged_dir, staging.staged_file])
def test_a_failed_write_keeps_the_folders_it_did_not_make_or_others_filled(stage, tmp_path):
    (tmp_path / "kept").mkdir()
    out = tmp_path / "kept" / "a" / "b" / "out"
    with pytest.raises(KeyboardInterrupt):
        with stage(out):
            (tmp_path / "kept" / "a" / "theirs.txt").write_text("another writer's\n")
            raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path / "kept").rglob("*")) == ["a", "theirs.txt"]


def test_a_write_that_succeeds_keeps_its_parents(tmp_path):
    out = tmp_path / "new" / "nested" / "out.txt"
    with staging.staged_file(out) as tmp:
        tmp.write_text("done\n")
    assert out.read_text() == "done\n"


def test_nothing_written_removes_the_parents(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with staging.staged_file(tmp_path / "new" / "out.txt"):
            pass
    assert list(tmp_path.iterdir()) == []


# --- temporary siblings of ended processes -----------------------------------------------------

def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("dead", [ended_pid, lambda: NO_PID])
def test_the_next_write_removes_siblings_of_ended_processes(dead, tmp_path):
    pid = dead()
    (tmp_path / f".out.tmp-{pid}").mkdir()
    (tmp_path / f".out.tmp-{pid}" / "gemms.csv").write_text("half\n")
    (tmp_path / f".out.old-{pid}").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / f".other.tmp-{pid}").mkdir()              # another output's: not touched
    with staging.staged_dir(tmp_path / "out", force=True) as tmp:
        (tmp / "run.json").write_text("{}\n")
    assert siblings(tmp_path) == [f".other.tmp-{pid}"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["run.json"]


def test_siblings_of_running_processes_are_kept(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = [f".fig.tmp-{sleeper.pid}.png", f".fig.old-{sleeper.pid}.png",
                ".fig.tmp-1.png"]                          # init: another user's, for most
        for name in live:
            (tmp_path / name).write_bytes(b"in progress")
        (tmp_path / f".fig.tmp-{NO_PID}.png").write_bytes(b"stale")
        with staging.staged_file(tmp_path / "fig.png") as tmp:
            tmp.write_bytes(b"figure")
        assert siblings(tmp_path) == sorted(live)
        assert (tmp_path / "fig.png").read_bytes() == b"figure"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_ended_process_set_aside_output_is_put_back(tmp_path):
    """Killed between its two renames: ``out`` is missing and ``.out.old-PID`` holds the
    previous output; it is put back, and replacing it again needs ``force``."""
    old = tmp_path / f".out.old-{NO_PID}"
    old.mkdir()
    (old / "run.json").write_text("previous\n")
    (tmp_path / f".out.tmp-{NO_PID}").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        staging.check_free(tmp_path / "out")
    assert siblings(tmp_path) == []
    assert (tmp_path / "out" / "run.json").read_text() == "previous\n"


def test_a_command_clears_the_stale_sibling_of_its_output(tmp_path):
    """A figure killed mid-write, then drawn again by the command line."""
    stale = tmp_path / f".area.tmp-{ended_pid()}.png"
    stale.write_bytes(b"half a figure")
    done = hbfpsim(["plot", "area", "fp32", "hbfp4", "--out", "area.png"], tmp_path,
                   stdout=subprocess.PIPE)
    assert done.returncode == 0, done.stderr
    assert siblings(tmp_path) == [] and (tmp_path / "area.png").stat().st_size > 1000


def test_a_run_killed_while_writing_is_cleaned_by_the_rerun(tmp_path):
    """SIGKILL while ``hbfpsim run`` writes its folder and figures leaves ``.out.tmp-PID``;
    running the same command again removes it and writes ``out``."""
    run = tmp_path / "run.toml"
    run.write_text(f'[run]\ntraces = ["{ROOT}/traces/mlp_digits"]\narrays = ["array32"]\n'
                   f'out = "out"\nmax_outputs = 512\n\n[[variant]]\nname = "fp32"\n'
                   f'input = "fp32"\n\n[[variant]]\nname = "hbfp4"\ninput = "hbfp4"\n')
    proc = subprocess.Popen([sys.executable, "-m", "hbfpsim", "run", str(run), "--quiet"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tmp = tmp_path / f".out.tmp-{proc.pid}"
    while proc.poll() is None and not tmp.exists():
        time.sleep(0.005)
    proc.kill()
    proc.communicate(timeout=60)
    if not tmp.exists():
        pytest.skip("the run finished writing before it could be killed")
    done = hbfpsim(["run", str(run), "--quiet"], tmp_path, stdout=subprocess.PIPE)
    assert done.returncode == 0, done.stderr
    assert siblings(tmp_path) == [] and (tmp_path / "out" / "run.json").is_file()
