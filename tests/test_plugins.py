"""The plugin system: built-ins registered like external plugins, entry points, autoload switch, hook checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rs_plugin.plugins import AUTOLOAD_ENV, BUILTIN_PLUGINS, describe_plugins, get_plugin_manager

THIRD_PARTY_PLUGIN = '''
"""A third-party noise and backend, shipped in its own distribution."""
import numpy as np
from rs_plugin import Noise, hookimpl
from rs_plugin.backends import CallableBackend

USED = []


class Triangular(Noise):
    """Triangular noise; its radius formula is a placeholder that marks certificates as ours."""

    name = "triangular"
    norm = "l1"

    def sample(self, rng, out):
        USED.append(out.size)
        out[...] = rng.triangular(-1, 0, 1, size=out.shape) * self.sigma * np.sqrt(6)

    def radius(self, p_lower):
        return 1234.5

    def p_needed(self, radius):
        return 1.0


class Constant:
    """A 'model' of a third-party framework: always answers its class."""

    def __init__(self, label):
        self.label = label


@hookimpl
def rs_plugin_add_noises():
    return {"triangular": Triangular}


@hookimpl
def rs_plugin_make_backend(model, num_classes, device):
    if isinstance(model, Constant):
        return CallableBackend(lambda batch: np.full(len(batch), model.label), num_classes)
    return None
'''

USE_IT = '''
import numpy as np
from rs_plugin import SmoothedClassifier
import thirdparty_rs
g = SmoothedClassifier(thirdparty_rs.Constant(2), 3, 0.5, noise="triangular", seed=0, batch_size=1000)
cert = g.certify(np.zeros(4), 10, 100, 0.01)
print(cert.prediction, cert.radius, sum(thirdparty_rs.USED))
'''


def install_distribution(name: str, module: str, source: str, target: Path) -> Path:
    """Build and install (into ``target``) a distribution whose ``rs_plugin`` entry point is ``module``."""
    folder = target.parent / f"{name}-src"
    folder.mkdir()
    (folder / f"{module}.py").write_text(source)
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(f"""
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "{name}"
            version = "1.0"
            [tool.setuptools]
            py-modules = ["{module}"]
            [project.entry-points.rs_plugin]
            triangular = "{module}"
        """)
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(folder)],
        check=True,
    )
    return target


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_distribution("thirdparty-rs", "thirdparty_rs", THIRD_PARTY_PLUGIN,
                                tmp_path_factory.mktemp("site") / "lib")


def run_python(code: str, site: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(site)}
    environ.pop(AUTOLOAD_ENV, None)
    return subprocess.run([sys.executable, "-c", code], env=environ | env, capture_output=True, text=True)


def test_installed_third_party_plugin_is_found_and_used(third_party: Path) -> None:
    done = run_python(USE_IT, third_party)
    assert done.returncode == 0, done.stderr
    prediction, radius, sampled = done.stdout.split()
    assert (prediction, radius, sampled) == ("2", "1234.5", "440")  # its backend, its noise: (n0 + n) x 4 coordinates


def test_plugins_command_data_lists_the_third_party_distribution(third_party: Path) -> None:
    done = run_python("from rs_plugin.plugins import describe_plugins; print(describe_plugins())", third_party)
    assert "('triangular', 'thirdparty-rs 1.0', ['rs_plugin_add_noises', 'rs_plugin_make_backend'])" in done.stdout


def test_environment_variable_turns_entry_point_autoload_off(third_party: Path) -> None:
    done = run_python(USE_IT, third_party, **{AUTOLOAD_ENV: "1"})
    assert done.returncode != 0
    known = "ablation, blocks, columns, diagonal, gaussian, laplace, lowpass, uniform"
    assert f"unknown noise 'triangular'; known noises: {known}" in done.stderr


def test_builtin_plugins_are_registered_like_external_ones() -> None:
    pm = get_plugin_manager()
    for name in BUILTIN_PLUGINS:
        assert pm.has_plugin(name)
    described = {name: hooks for name, _, hooks in describe_plugins()}
    assert described["rs_plugin.noises"] == ["rs_plugin_add_noises"]
    assert described["rs_plugin.backends"] == ["rs_plugin_make_backend"]
    assert "rs_plugin_make_backend" in described["torch"]


def test_misspelt_hook_in_an_installed_plugin_is_caught(tmp_path: Path) -> None:
    typo = "from rs_plugin import hookimpl\n\n@hookimpl\ndef rs_plugin_add_noise():\n    return {}\n"
    site = install_distribution("typo-rs", "typo_rs", typo, tmp_path / "lib")
    done = run_python("import rs_plugin; rs_plugin.get_plugin_manager()", site)
    assert done.returncode != 0
    assert "PluginValidationError" in done.stderr and "rs_plugin_add_noise" in done.stderr


def test_core_and_analyze_work_without_the_optional_frameworks() -> None:
    """With torch, torchvision, ART, torchattacks, Ray, scikit-learn and matplotlib unimportable, the core
    certifies a numpy classifier, lists its plugins and analyzes the paper's logs."""
    log = Path(__file__).parent / "data/cohen2019/data/certify/cifar10/resnet110/noise_0.25/test/sigma_0.25"
    code = textwrap.dedent(f"""
        import sys
        BLOCKED = {{"torch", "torchvision", "art", "torchattacks", "ray", "sklearn", "matplotlib"}}

        class Uninstalled:
            def find_spec(self, name, path, target=None):
                if name.partition(".")[0] in BLOCKED:
                    raise ImportError(f"No module named {{name!r}}")

        sys.meta_path.insert(0, Uninstalled())
        import numpy as np
        import rs_plugin
        from rs_plugin.cli import main
        from rs_plugin.plugins import describe_plugins
        g = rs_plugin.SmoothedClassifier(lambda b: (b[:, 0] > 0).astype(np.int64), 2, 0.5, seed=0)
        print(g.certify(np.array([1.0, 0.0], np.float32), 100, 1000, 0.001).prediction)
        print(len(describe_plugins()))
        sys.exit(main(["analyze", {str(log)!r}, "--radii", "0.5", "--json"]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["1", "13"] and '"0.5": 0.428' in done.stdout


SKLEARN_MODEL = '''
import numpy as np
from sklearn.linear_model import LogisticRegression
from rs_plugin.datasets import digits_arrays


def base():
    x, y = digits_arrays("train")
    model = LogisticRegression(max_iter=500).fit(x.reshape(len(x), -1), y)
    return lambda batch: model.predict(batch.reshape(len(batch), -1))
'''


def test_cli_certifies_a_scikit_learn_model_without_torch(tmp_path: Path) -> None:
    """`pip install rs-plugin` plus scikit-learn: the CLI certifies a scikit-learn callable given as --model, with
    torch, torchvision, ART, torchattacks and Ray unimportable; the built-in torch model names its extra."""
    pytest.importorskip("sklearn")
    (tmp_path / "mymod.py").write_text(SKLEARN_MODEL)
    out = tmp_path / "out.tsv"
    code = textwrap.dedent(f"""
        import sys
        BLOCKED = {{"torch", "torchvision", "art", "torchattacks", "ray"}}

        class Uninstalled:
            def find_spec(self, name, path, target=None):
                if name.partition(".")[0] in BLOCKED:
                    raise ImportError(f"No module named {{name!r}}")

        sys.meta_path.insert(0, Uninstalled())
        from rs_plugin.cli import main
        args = ["certify", "--dataset", "digits", "--sigma", "0.25", "--n", "500", "--max-examples", "4",
                "--no-progress", "--out"]
        assert main([*args, {str(tmp_path / "torch.tsv")!r}]) == 1
        sys.exit(main([*args, {str(out)!r}, "--model", {str(tmp_path / "mymod.py") + ":base"!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pip install 'rs-plugin[torch]'" in done.stderr
    rows = out.read_text().splitlines()
    assert rows[0].split("\t") == ["idx", "label", "predict", "radius", "correct", "time"] and len(rows) == 5
    assert sum(int(row.split("\t")[4]) for row in rows[1:]) >= 3  # logistic regression on digits: mostly right
