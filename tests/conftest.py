import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests import oracle.py and inputs.py

import json  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402

from hypothesis import settings  # noqa: E402

# Property tests: the same examples on every run in CI ("ci", the default), so a failure is
# reproducible and never flaky; HYPOTHESIS_PROFILE=fuzz explores new random examples, many
# more of them (run it when changing a reader or a kernel).
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# --- the dependencies a run was tested with ---------------------------------------------
TESTED = Path(__file__).resolve().parents[1] / ".ci" / "tested.txt"


def _installed() -> dict[str, str]:
    """Every dependency listed in .ci/tested.txt that is installed: {name: version}."""
    from importlib import metadata
    found = {}
    for name in _tested():
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _tested() -> dict[str, str]:
    if not TESTED.is_file():
        return {}
    lines = (line.split("#")[0].strip() for line in TESTED.read_text().splitlines())
    return dict(line.split("==", 1) for line in lines if "==" in line)


def pytest_report_header(config):
    return "dependencies: " + ", ".join(f"{n} {v}" for n, v in _installed().items())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After a failure, name every dependency that is not at the release CI last passed
    with: a new release that changes a result shows up here by package and version."""
    if not (terminalreporter.stats.get("failed") or terminalreporter.stats.get("error")):
        return
    tested = _tested()
    moved = [f"{n} {v} (CI last passed with {tested[n]})" for n, v in _installed().items()
             if v != tested[n]]
    if moved:
        terminalreporter.section("dependencies at other releases than CI last passed with "
                                 "(.ci/tested.txt)", sep="!", red=True)
        for line in moved:
            terminalreporter.line(line, red=True)


KERNEL = "python3"


def _spec_runs_this_python(spec_dir: str) -> bool:
    """Whether the kernelspec in ``spec_dir`` starts this interpreter: jupyter_client
    replaces a bare ``python``/``python3`` with ``sys.executable``; an absolute path must be
    this very interpreter, or the kernel might not see hbfpsim."""
    try:
        argv = json.loads((Path(spec_dir) / "kernel.json").read_text())["argv"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not argv:
        return False
    if argv[0] in ("python", f"python{sys.version_info[0]}",
                   "python{}.{}".format(*sys.version_info[:2])):
        return True
    return os.path.realpath(argv[0]) == os.path.realpath(sys.executable)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """The kernel name to run notebooks with: the installed ``python3`` kernelspec when it
    starts this interpreter (ipykernel installs one into the environment), else one written
    to a temporary folder that JUPYTER_PATH puts first."""
    from jupyter_client.kernelspec import find_kernel_specs

    found = find_kernel_specs().get(KERNEL)
    if found is not None and _spec_runs_this_python(found):
        yield KERNEL
        return
    data = tmp_path_factory.mktemp("jupyter")
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (hbfpsim tests)", "language": "python"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", os.pathsep.join(
            [str(data), *filter(None, [os.environ.get("JUPYTER_PATH")])]))
        yield KERNEL
