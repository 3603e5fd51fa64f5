"""`rs-plugin certify | predict | plugins`: the paper's TSV over a dataset, resumed after kill -9, clear errors."""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rs_plugin.cli import main
from rs_plugin.results import read_results

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime"
TIME = re.compile(r"^\d+:\d\d:\d\d(\.\d{6})?$")
FAST = ["--sigma", "0.25", "--n0", "20", "--n", "100", "--no-progress"]


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def rows(path: Path) -> list[list[str]]:
    """The rows of a results file without their time column."""
    return [line.split("\t")[:-1] for line in path.read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def digits_model_cached(noisy_digits_net):
    """The embedded digits model (sigma 0.25) is trained once and cached for every run below."""
    return noisy_digits_net


def test_certify_reports_the_batch_size_it_starts_with_and_each_move(tmp_path, capsys, monkeypatch,
                                                                    digits_model_cached) -> None:
    from rs_plugin import calibration

    monkeypatch.setattr(calibration, "MARGIN", -1.0)  # every trial wins: the size moves during the run
    monkeypatch.setattr(calibration, "UNSTEADY", float("inf"))  # every trial is judged, however the timings scatter
    monkeypatch.setattr(calibration, "CHUNK_SECONDS", 0.0)  # one batch a chunk: many trials
    monkeypatch.setattr(calibration, "START_BYTES", 16 * 256)  # 8x8 digits start at 16 copies
    monkeypatch.setattr(calibration, "_SIZERS", {})
    code, _, err = cli(capsys, "certify", "--sigma", "0.25", "--n0", "100", "--n", "3000", "--max-examples", "2",
                       "--out", tmp_path / "c.tsv")
    assert code == 0
    assert re.search(r"rs-plugin: batch size 16 to start with, then the fastest measured during the run "
                     r"\(--batch-size sets it\)", err)
    assert re.search(r"rs-plugin: batch size 16 -> (8|32), [\d.]+x as fast measured during the run", err)


def test_certify_writes_the_papers_format_with_the_cores_answers(tmp_path, capsys, digits_model_cached, digits_test):
    from rs_plugin import SmoothedClassifier

    out = tmp_path / "certify.tsv"
    code, _, err = cli(capsys, "certify", *FAST, "--skip", "3", "--max-examples", "6", "--out", out)
    assert (code, err) == (0, "")
    lines = out.read_text().splitlines()
    assert lines[0] == HEADER
    smoothed = SmoothedClassifier(digits_model_cached, 10, 0.25, seed=0)
    x, y = digits_test
    for line, idx in zip(lines[1:], range(0, 18, 3), strict=True):
        certificate = smoothed.certify(x[idx], 20, 100, 0.001, index=idx)
        expected = [str(idx), str(y[idx]), str(certificate.prediction), f"{certificate.radius:.3}",
                    str(int(certificate.prediction == y[idx]))]
        assert line.split("\t")[:5] == expected
        assert TIME.match(line.split("\t")[5])
    assert read_results(out)["correct"].mean() >= 0.8


def test_predict_writes_the_papers_format(tmp_path, capsys, digits_model_cached, digits_test):
    out = tmp_path / "predict.tsv"
    code, _, _ = cli(capsys, "predict", "--sigma", "0.25", "--n", "100", "--max-examples", "5", "--no-progress",
                     "--out", out)
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "idx\tlabel\tpredict\tcorrect\ttime"
    assert [line.split("\t")[:2] for line in lines[1:]] == [[str(i), str(digits_test[1][i])] for i in range(5)]


def test_rerunning_resumes_without_losing_or_doubling_rows(tmp_path, capsys, digits_model_cached):
    whole, resumed = tmp_path / "whole.tsv", tmp_path / "resumed.tsv"
    assert cli(capsys, "certify", *FAST, "--max-examples", "8", "--out", whole)[0] == 0
    assert cli(capsys, "certify", *FAST, "--max-examples", "3", "--out", resumed)[0] == 0
    first = resumed.read_text()
    with open(resumed, "a") as file:
        file.write("3\t4\t4\t0.4")  # a row cut short by a crash
    assert cli(capsys, "certify", *FAST, "--max-examples", "8", "--out", resumed)[0] == 0
    assert resumed.read_text().startswith(first)  # rows already there are kept as they are
    assert rows(resumed) == rows(whole)
    before = resumed.read_text()
    assert cli(capsys, "certify", *FAST, "--max-examples", "8", "--out", resumed)[0] == 0  # complete: no work
    assert resumed.read_text() == before


def test_certify_killed_mid_run_resumes_to_the_rows_of_an_uninterrupted_run(tmp_path, digits_model_cached):
    out, whole = tmp_path / "killed.tsv", tmp_path / "whole.tsv"
    command = ["certify", "--sigma", "0.25", "--n", "1000", "--max-examples", "16", "--no-progress"]
    process = subprocess.Popen(
        [sys.executable, "-m", "rs_plugin.cli", *command, "--out", str(out)], start_new_session=True,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_text().count("\n") > 4):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no rows written in 120 s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = out.read_text().count("\n") - 1
    assert 4 <= written < 16, "the run was not killed mid-way"
    assert main([*command, "--out", str(out)]) == 0
    assert main([*command, "--out", str(whole)]) == 0
    assert [row[0] for row in rows(out)] == [str(i) for i in range(16)]
    assert rows(out) == rows(whole)


def test_target_radius_adds_a_samples_column_that_analyze_reads(tmp_path, capsys, digits_model_cached):
    out = tmp_path / "sequential.tsv"
    code, _, _ = cli(capsys, "certify", "--sigma", "0.25", "--n", "10000", "--target-radius", "0.25",
                     "--max-examples", "4", "--no-progress", "--out", out)
    assert code == 0
    assert out.read_text().splitlines()[0] == HEADER + "\tsamples"
    results = read_results(out)
    assert np.all(results["samples"] <= 100 + 10000)
    assert results["samples"].min() < 100 + 10000  # the clear cases stop early
    code, table, _ = cli(capsys, "analyze", out, "--radii", "0.25", "--format", "csv")
    assert code == 0 and table.startswith("label,0.25\n")


def test_a_model_given_as_file_and_function(tmp_path, capsys, digits_model_cached):
    module = tmp_path / "my_models.py"
    module.write_text(
        "from rs_plugin.adapters.training import digits_model\n\n"
        "def noisy():\n    return digits_model(0.25)\n"
    )
    default, given = tmp_path / "default.tsv", tmp_path / "given.tsv"
    assert cli(capsys, "certify", *FAST, "--max-examples", "3", "--out", default)[0] == 0
    assert cli(capsys, "certify", *FAST, "--max-examples", "3", "--model", f"{module}:noisy", "--out", given)[0] == 0
    assert rows(given) == rows(default)


@pytest.mark.parametrize(("flag", "mode", "recorded"), [(["--compile"], "default", True),
                                                         (["--compile", "reduce-overhead"], "reduce-overhead",
                                                          "reduce-overhead"), ([], None, False)])
def test_compile_takes_an_optional_mode_that_reaches_torch_compile(tmp_path, capsys, monkeypatch,
                                                                   digits_model_cached, flag, mode, recorded):
    """``--compile`` alone is torch.compile's default mode and is recorded as before (True); ``--compile MODE`` passes
    the mode on (reduce-overhead: CUDA graphs on a GPU). torch.compile is faked: nothing is compiled."""
    import json

    modes: list[str] = []
    monkeypatch.setattr(torch, "compile", lambda function, **options: modes.append(options["mode"]) or function)
    out = tmp_path / "compiled.tsv"
    assert cli(capsys, "certify", *FAST, "--max-examples", "2", *flag, "--out", out)[0] == 0
    assert set(modes) == ({mode} if mode else set()) and len(out.read_text().splitlines()) == 3  # (and at pre-flight)
    assert json.loads((tmp_path / "compiled.tsv.settings.json").read_text())["settings"]["compile"] == recorded
    with pytest.raises(SystemExit) as info:
        main(["certify", *FAST, "--compile", "fastest", "--out", str(tmp_path / "x.tsv")])
    assert info.value.code == 2 and "invalid choice: 'fastest'" in capsys.readouterr().err


def fake_cifar10(root: Path, count: int) -> Path:
    """A CIFAR-10 test split of ``count`` random images in torchvision's on-disk format."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batch = {"data": rng.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8), "labels": list(range(count))}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    return root


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    """A fake CIFAR-10 folder. torchvision checks the md5 of the real files; this test accepts its own."""
    pytest.importorskip("torchvision")
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    return fake_cifar10(tmp_path / "cifar", 4)


@pytest.mark.parametrize("arch", ["cifar_resnet20", "cifar_resnet110"])
def test_a_checkpoint_in_the_papers_format_certifies_cifar10(tmp_path, capsys, cifar_dir, arch):
    from rs_plugin.adapters.checkpoints import save_checkpoint
    from rs_plugin.adapters.models import get_architecture

    torch.manual_seed(0)
    checkpoint = tmp_path / "checkpoint.pth.tar"
    save_checkpoint(get_architecture(arch), arch, checkpoint)
    out = tmp_path / "cifar.tsv"
    code, _, err = cli(capsys, "certify", "--dataset", "cifar10", "--data-dir", cifar_dir, "--checkpoint", checkpoint,
                       "--sigma", "0.25", "--n0", "4", "--n", "8", "--alpha", "0.1", "--batch-size", "8",
                       "--max-examples", "2", "--no-progress", "--out", out)
    assert (code, err) == (0, "")
    results = read_results(out)
    assert results["idx"].tolist() == [0, 1] and results["label"].tolist() == [0, 1]
    assert set(results["predict"].tolist()) <= {-1, *range(10)}


def bad_inputs(tmp_path: Path) -> list[tuple[list, str]]:
    from rs_plugin.adapters.checkpoints import save_checkpoint
    from rs_plugin.adapters.models import get_architecture

    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("hello")
    wrong_arch = tmp_path / "wrong.pth"
    torch.save({"arch": "vgg_from_mars", "state_dict": {}}, wrong_arch)
    wrong_format = tmp_path / "plain.pth"
    torch.save({"weights": 1}, wrong_format)
    cifar = tmp_path / "cifar_resnet20.pth"
    save_checkpoint(get_architecture("cifar_resnet20"), "cifar_resnet20", cifar)
    paper = tmp_path / "paper.tsv"
    paper.write_text("idx\tlabel\tpredict\tcorrect\ttime\n")
    return [
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--checkpoint", tmp_path / "missing.pth"], "missing.pth"),
        (["--checkpoint", not_a_checkpoint], "not a file saved by torch.save"),
        (["--checkpoint", wrong_format], "not in the paper's format"),
        (["--checkpoint", wrong_arch], "unknown architecture 'vgg_from_mars'"),
        (["--checkpoint", wrong_format, "--model", "m:f"], "give one of them, not both"),
        (["--dataset", "cifar10", "--checkpoint", cifar], "data_dir"),
        (["--dataset", "cifar10", "--checkpoint", cifar, "--data-dir", tmp_path / "nowhere"], "no such folder"),
        (["--dataset", "cifar10", "--checkpoint", cifar, "--data-dir", tmp_path], "no CIFAR-10 in"),
        (["--dataset", "cifar10", "--data-dir", tmp_path], "give a model for cifar10"),
        (["--model", "no_such_module_xyz:make"], "cannot import module 'no_such_module_xyz'"),
        (["--model", "rs_plugin.adapters.models:no_such_function"], "has no attribute 'no_such_function'"),
        (["--model", "just-a-name"], "expected module:function"),
        (["--sigma", "-1"], "sigma must be a positive"),
        (["--alpha", "1.5"], "alpha must lie strictly between 0 and 1"),
        (["--n", "0"], "n must be at least 1"),
        (["--noise", "pink"], "unknown noise 'pink'"),
        (["--workers", "2"], "the local executor runs one worker"),
        (["--executor", "dask"], "unknown executor 'dask'"),
        (["--out", paper], "this run writes idx label predict radius correct time"),
    ]


def test_user_mistakes_end_with_one_line_on_stderr(tmp_path, capsys, digits_model_cached):
    for extra, message in bad_inputs(tmp_path):
        args = ["certify", "--sigma", "0.25", "--n", "100", "--max-examples", "1", "--no-progress",
                "--out", tmp_path / "out.tsv", *extra]
        code, _, err = cli(capsys, *args)
        assert code == 1, extra
        assert message in err and "Traceback" not in err, (extra, err)
        assert err.startswith("rs-plugin certify: error:") and err.count("\n") == 1, err
        assert not (tmp_path / "out.tsv").exists(), "the error came after the run started"


def test_command_line_syntax_errors_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["certify", "--sigma", "lots", "--out", "x.tsv"])
    assert info.value.code == 2
    assert "invalid float value: 'lots'" in capsys.readouterr().err


def test_the_console_script_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rs_plugin.cli", "analyze", str(tmp_path / "none.tsv")], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "none.tsv" in result.stderr and "Traceback" not in result.stderr


def test_plugins_lists_what_each_plugin_provides(capsys):
    code, out, _ = cli(capsys, "plugins")
    assert code == 0
    assert "noises: gaussian, laplace, uniform" in out
    assert "executors: local" in out and "executors: ray" in out
    assert re.search(r"^torch \(rs-plugin [\d.]+\)$", out, re.MULTILINE)


# Nothing lost: a file that is not ours is never modified, and rows are never mixed across settings.


@pytest.mark.parametrize("content", [b"my notes", b"line1\nline2", b"line1\nline2\n"])
def test_an_out_file_that_is_not_a_results_file_is_refused_untouched(tmp_path, capsys, digits_model_cached, content):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(content)
    code, _, err = cli(capsys, "certify", *FAST, "--max-examples", "1", "--out", notes)
    assert code == 1 and "not a results file" in err and err.count("\n") == 1, err
    assert notes.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resuming_with_other_settings_is_refused_naming_them(tmp_path, capsys, digits_model_cached):
    out = tmp_path / "out.tsv"
    assert cli(capsys, "certify", *FAST, "--max-examples", "2", "--out", out)[0] == 0
    before = out.read_bytes()
    code, _, err = cli(capsys, "certify", "--sigma", "0.25", "--n0", "20", "--n", "200", "--alpha", "0.3",
                       "--no-progress", "--max-examples", "4", "--out", out)  # fmt: skip
    assert code == 1 and err.count("\n") == 1
    assert "its 2 rows were made with other settings (n 100 there, 200 here; alpha 0.001 there, 0.3 here)" in err
    assert out.read_bytes() == before
    code, _, err = cli(capsys, "certify", *FAST, "--batch-size", "7", "--max-examples", "4", "--out", out)
    assert (code, err) == (0, "")  # how the rows are computed is not a setting of theirs
    assert read_results(out)["idx"].tolist() == [0, 1, 2, 3]


def test_resuming_with_a_checkpoint_of_other_content_is_refused(tmp_path, capsys):
    from rs_plugin.adapters.checkpoints import save_checkpoint
    from rs_plugin.adapters.models import get_architecture

    checkpoint, out = tmp_path / "model.pt", tmp_path / "out.tsv"
    torch.manual_seed(0)
    save_checkpoint(get_architecture("digits_cnn"), "digits_cnn", checkpoint)
    command = ["certify", *FAST, "--checkpoint", checkpoint, "--max-examples", "1", "--out", out]
    assert cli(capsys, *command)[0] == 0
    save_checkpoint(get_architecture("digits_cnn"), "digits_cnn", checkpoint)  # retrained: other weights
    code, _, err = cli(capsys, *command[:-4], "--max-examples", "2", "--out", out)
    assert code == 1 and "other settings (checkpoint_sha256 " in err


# One line for every broken checkpoint, naming the flag and what to do.


class Net(torch.nn.Module):
    """A model class of the user's own, which weights_only loading refuses to unpickle."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)


def broken_checkpoints(folder: Path) -> dict[str, tuple[Path, str, str]]:
    """Name: (file, the problem, the advice) for each way a checkpoint can be broken."""
    from rs_plugin.adapters.models import get_architecture

    other_arch = {"arch": "cifar_resnet20", "state_dict": get_architecture("cifar_resnet110").state_dict()}
    made = {
        "whole model": (lambda p: torch.save(Net(), p), "holds a pickled ", "save {'arch': ARCH, 'state_dict'"),
        "custom object": (lambda p: torch.save({"arch": "digits_cnn", "state_dict": {}, "x": Net}, p),
                          "holds a pickled ", "model.state_dict()"),
        "other architecture": (lambda p: torch.save(other_arch, p), "its state_dict does not fit 'cifar_resnet20'",
                               "540 unexpected keys (1.layer1.3.conv1.weight, "),
        "bare state_dict": (lambda p: torch.save(Net().state_dict(), p), "a bare state_dict", "save {'arch'"),
        "junk": (lambda p: p.write_bytes(b"hello world"), "not a file saved by torch.save", ""),
        "empty": (lambda p: p.write_bytes(b""), "not a file saved by torch.save", ""),
        "missing": (lambda p: None, "no such file", ""),
    }  # fmt: skip
    cases = {}
    for name, (make, problem, advice) in made.items():
        path = folder / f"{name.replace(' ', '_')}.pt"
        make(path)
        cases[name] = (path, problem, advice)
    return cases


def test_every_broken_checkpoint_is_one_line_naming_the_flag(tmp_path, capsys):
    for name, (path, problem, advice) in broken_checkpoints(tmp_path).items():
        code, _, err = cli(capsys, "certify", *FAST, "--checkpoint", path, "--max-examples", "1", "--out",
                           tmp_path / "out.tsv")  # fmt: skip
        assert code == 1, name
        assert err.startswith(f"rs-plugin certify: error: --checkpoint '{path}': {problem}"), (name, err)
        assert advice in err and err.count("\n") == 1 and len(err) < 400, (name, err)


# Pre-flight: a run that can certify nothing is refused, one that can certify less than asked is warned about.


def test_settings_that_can_only_abstain_are_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out.tsv"
    code, _, err = cli(capsys, "certify", "--sigma", "0.25", "--n", "5", "--no-progress", "--out", out)
    assert code == 1 and "n=5 with alpha=0.001 cannot certify any radius" in err and "use n >= 10" in err
    code, _, err = cli(capsys, "predict", "--sigma", "0.25", "--n", "10", "--no-progress", "--out", out)
    assert code == 1 and "PREDICT always abstains" in err and "use n >= 11" in err
    assert not out.exists()


def test_settings_that_certify_little_are_warned_about_in_one_line(tmp_path, capsys, digits_model_cached):
    code, _, err = cli(capsys, "certify", "--sigma", "0.25", "--n", "10", "--max-examples", "1", "--no-progress",
                       "--out", tmp_path / "few.tsv")  # fmt: skip
    assert code == 0
    assert err.startswith("rs-plugin certify: warning: n=10 with alpha=0.001: only an example whose 10 samples all")
    assert err.count("\n") == 1
    code, _, err = cli(capsys, "certify", "--sigma", "0.25", "--n", "1000", "--target-radius", "0.25", "2",
                       "--max-examples", "1", "--no-progress", "--out", tmp_path / "far.tsv")  # fmt: skip
    assert code == 0 and err.count("\n") == 1
    assert "warning: target_radius 2 exceeds the largest radius n=1000 with alpha=0.001 can certify (0.607)" in err
