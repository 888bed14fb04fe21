"""The package's structure as docs/architecture.md writes it: no import goes up or sideways
between layers (function-level imports included), and the leaves load no numba."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hbfpsim"


def documented_layers(text: str) -> dict[str, int]:
    """{package: layer} from the numbered list in the first ```text block of the doc."""
    block = re.search(r"```text\n(.*?)```", text, re.S)[1]
    layers = {}
    for rank, names in re.findall(r"^(\d+)\. (.+)$", block, re.M):
        for name in names.split(","):
            layers[name.strip()] = int(rank)
    return layers


def package_of(module: str) -> str:
    """'hbfpsim.mac.kernels' -> 'mac'; 'hbfpsim' -> 'hbfpsim' (the root package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "hbfpsim"


def imported_modules(path: Path, top: Path) -> list[tuple[int, str]]:
    """(line, hbfpsim module) for every import in the file, wherever it stands (``top``: the
    directory holding the package). The package uses absolute imports only."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use an absolute import"
            for alias in node.names:             # from hbfpsim import formats: a submodule
                candidate = f"{node.module}.{alias.name}"
                where = top / candidate.replace(".", "/")
                is_module = where.with_suffix(".py").exists() or where.is_dir()
                found.append((node.lineno, candidate if is_module else node.module))
    return [(line, m) for line, m in found if m == "hbfpsim" or m.startswith("hbfpsim.")]


def violations(package_dir: Path, layers: dict[str, int]) -> list[str]:
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        own = package_of(module)
        if own not in layers:
            problems.append(f"{rel}: package {own!r} is not in the documented layers")
            continue
        for line, target in imported_modules(path, package_dir.parent):
            other = package_of(target)
            if other == own:
                continue
            if other not in layers:
                problems.append(f"{rel}:{line}: imports {target}, whose package is undocumented")
            elif layers[other] >= layers[own]:
                problems.append(f"{rel}:{line}: {own} (layer {layers[own]}) imports {target} "
                                f"(layer {layers[other]})")
    return problems


def test_no_import_goes_up_or_sideways():
    layers = documented_layers((ROOT / "docs" / "architecture.md").read_text())
    assert {"config", "trace", "formats", "mac", "numerics", "array", "cost", "cli"} <= set(layers)
    assert violations(PACKAGE, layers) == []


def test_the_check_catches_upward_sideways_and_undocumented_imports(tmp_path):
    pkg = tmp_path / "hbfpsim"
    sources = {"__init__.py": "",
               "formats/__init__.py": "def f():\n    from hbfpsim.mac import x\n",   # up, lazily
               "mac/__init__.py": "from hbfpsim import formats\n",                  # down: fine
               "cost/__init__.py": "import hbfpsim.array\n",                        # sideways
               "array/__init__.py": "import numpy\n"}
    for name, text in sources.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    layers = {"formats": 1, "mac": 2, "array": 3, "cost": 3, "hbfpsim": 4}
    assert violations(pkg, layers) == [
        "hbfpsim/cost/__init__:1: cost (layer 3) imports hbfpsim.array (layer 3)",
        "hbfpsim/formats/__init__:2: formats (layer 1) imports hbfpsim.mac (layer 2)"]
    del layers["mac"]
    assert "hbfpsim/mac/__init__: package 'mac' is not in the documented layers" in \
        violations(pkg, layers)


@pytest.mark.parametrize("code", ["import hbfpsim.config", "import hbfpsim",
                                  "import hbfpsim.trace",
                                  "from hbfpsim import cli\ntry:\n    cli.main(['--help'])\n"
                                  "except SystemExit:\n    pass"])
def test_light_imports_load_no_numba(code, tmp_path):
    """Reading a configuration or a trace, and `hbfpsim --help`, load no numba kernels."""
    probe = code + "\nimport sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] in " \
                   "('numba', 'llvmlite')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    assert done.stdout.strip().splitlines()[-1] == "[]"
