"""The architecture contract: the core knows no framework, and the faces import each other in one direction only.
import-linter checks it (``.ci/lint-imports``, run by CI); these tests show that it checks every core module and
that it fails on a deliberate violation, even one inside a function."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "lint-imports"
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def core_modules() -> set[str]:
    """Every module and package directly inside rs_plugin/ (a package's own modules are in its contract entry)."""
    core = ROOT / "rs_plugin"
    names = {f"rs_plugin.{path.stem}" for path in core.glob("*.py") if path.stem != "__init__"}
    return names | {f"rs_plugin.{path.name}" for path in core.iterdir() if (path / "__init__.py").exists()}


def test_the_contract_covers_every_core_module() -> None:
    (core,) = [contract for contract in CONTRACTS if contract["type"] == "forbidden"]
    assert set(core["source_modules"]) == core_modules()
    assert {"torch", "art", "ray", "rs_plugin.adapters", "rs_plugin.attacks"} <= set(core["forbidden_modules"])


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(tree)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def linter() -> None:
    if shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")


def test_the_code_keeps_the_contract(linter) -> None:
    done = lint(ROOT)
    assert done.returncode == 0 and "2 kept, 0 broken" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("file", "violation"),
    [
        ("rs_plugin/runs.py", "\n\ndef _late():\n    import torch\n\n    return torch\n"),
        ("rs_plugin/cli.py", "\n\ndef _late():\n    from .adapters import plugins\n\n    return plugins\n"),
        ("adapters/training.py", "\n\ndef _late():\n    from ..attacks import smoothadv\n\n    return smoothadv\n"),
    ],
    ids=["core-imports-torch-in-a-function", "core-imports-the-adapters", "adapters-import-the-attacks"],
)
def test_a_violation_breaks_the_contract(linter, tmp_path: Path, file: str, violation: str) -> None:
    tree = tmp_path / "tree"
    for part in ("rs_plugin", "adapters", "attacks"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    (tree / file).write_text((tree / file).read_text() + violation)
    done = lint(tree)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout + done.stderr
