"""The torch backend: same statistics as the numpy one, noise on the raw input, bounded memory, eval mode."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from simulated_devices import OutOfMemoryAbove64  # noqa: E402
from torch import nn  # noqa: E402

from rs_plugin import SmoothedClassifier  # noqa: E402
from rs_plugin.adapters.models import Normalize  # noqa: E402
from rs_plugin.adapters.torch import TorchBackend  # noqa: E402
from rs_plugin.diagnostics import PreflightWarning  # noqa: E402
from rs_plugin.noises import Gaussian  # noqa: E402


def linear_net(w: list[float], b: float, normalize: tuple[float, float] | None = None) -> nn.Module:
    """Logits (-(w.x + b), w.x + b) of a halfspace on 1 x len(w) inputs, optionally behind a Normalize layer."""
    layer = nn.Linear(len(w), 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[-v for v in w], w]))
        layer.bias.copy_(torch.tensor([-b, b]))
    layers = [nn.Flatten(), layer]
    if normalize is not None:
        layers.insert(0, Normalize([normalize[0]], [normalize[1]]))
    return nn.Sequential(*layers)


@pytest.mark.parametrize("noise", ["gaussian", "laplace", "uniform"])
def test_torch_backend_certifies_the_analytic_radius(noise: str) -> None:
    net = linear_net([1.0, 0.0, 0.0, 0.0], -0.2)
    g = SmoothedClassifier(net, 2, 0.5, noise=noise, seed=0)
    assert isinstance(g.backend, TorchBackend)
    x = torch.tensor([[0.6, 0.3, -0.1, 0.9]])  # distance 0.4 to the boundary x_1 = 0.2 in l1 and l2
    cert = g.certify(x, 100, 100_000, 0.001)
    assert cert.prediction == 1 and 0.38 < cert.radius <= 0.4


def test_noise_is_added_before_the_normalisation_layer() -> None:
    """Behind Normalize(mean 0.5, std 0.25) the boundary x_1 = 0.7 is still certified in raw-input units."""
    net = linear_net([1.0, 0.0], 0.0, normalize=(0.5, 0.25))  # positive iff (x_1 - 0.5) / 0.25 > 0.8
    with torch.no_grad():
        net[2].bias.copy_(torch.tensor([0.8, -0.8]))
    cert = SmoothedClassifier(net, 2, 0.25, seed=0).certify(np.array([[0.9, 0.1]], np.float32), 100, 100_000, 0.001)
    assert cert.prediction == 1 and 0.19 < cert.radius <= 0.2


class Recorder(nn.Module):
    """Records batch sizes and the training flag it sees; votes for class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.5)
        self.sizes: list[int] = []
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        self.modes.append(self.training)
        return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], dim=1)


def test_batches_are_bounded_and_every_submodule_keeps_its_mode() -> None:
    net = Recorder().train()
    net.dropout.eval()  # a submodule in another mode than its parent must stay so
    cert = SmoothedClassifier(net, 2, 0.5, batch_size=300, seed=0).certify(torch.zeros(3, 5), 100, 1000, 0.01)
    assert net.sizes == [100, 300, 300, 300, 100] and cert.num_samples == 1100
    assert not any(net.modes) and net.training and not net.dropout.training
    wrapper = nn.Sequential(Recorder().eval())  # a wrapper built in train mode around an eval model
    SmoothedClassifier(wrapper, 2, 0.5).certify(torch.zeros(3, 5), 10, 10, 0.01)
    assert wrapper.training and not wrapper[0].training


def test_same_seed_same_certificate_and_equal_to_numpy_statistics() -> None:
    net = linear_net([1.0, 1.0], 0.0)
    x = torch.tensor([[0.2, 0.1]])
    first = SmoothedClassifier(net, 2, 0.5, seed=3).certify(x, 100, 20_000, 0.001)
    assert first == SmoothedClassifier(net, 2, 0.5, seed=3).certify(x, 100, 20_000, 0.001)
    # 20,000 votes for p_A = Phi(0.3 / sqrt(2) / 0.5): the count is within 5 standard deviations.
    from scipy.stats import norm

    p = norm.cdf(0.3 / np.sqrt(2) / 0.5)
    assert abs(first.count - 20_000 * p) < 5 * np.sqrt(20_000 * p * (1 - p))


def test_bad_model_outputs_and_shapes_are_reported() -> None:
    net = linear_net([1.0, 0.0], 0.0)
    with pytest.raises(ValueError, match=r"shape \(10, 2\) for a batch of 10; expected \(10, num_classes=3\)"):
        SmoothedClassifier(net, 3, 0.5, batch_size=10).predict(torch.zeros(1, 2), 10, 0.01)
    with pytest.raises(ValueError, match=r"raised \w+ on a batch of noisy inputs of shape \(10, 1, 3\)"):
        SmoothedClassifier(net, 2, 0.5, batch_size=10).predict(torch.zeros(1, 3), 10, 0.01)
    with pytest.raises(ValueError, match="x contains NaN"):
        SmoothedClassifier(net, 2, 0.5).certify(torch.tensor([[0.0, float("nan")]]), 10, 10, 0.01)


INPUT_KINDS = {
    "numpy float32": lambda v: np.array(v, dtype=np.float32),
    "numpy float64": lambda v: np.array(v, dtype=np.float64),
    "list": lambda v: v,
    "tensor float32": lambda v: torch.tensor(v),
    "tensor float64": lambda v: torch.tensor(v, dtype=torch.float64),
    "tensor bfloat16": lambda v: torch.tensor(v, dtype=torch.bfloat16),
    "tensor requiring grad": lambda v: torch.tensor(v, requires_grad=True),
}


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_every_kind_of_input_is_checked_for_nan_and_infinity_and_kept_as_given(kind: str) -> None:
    """Whatever the input is (numpy, a list, a CPU tensor of any float dtype, one that requires a gradient), its
    values are checked on the host: a NaN, an infinity, or a float64 beyond float32's range is refused with the
    one-line error; a finite input arrives as float32 on the model's device with its values, and is certified as
    its float32 numpy twin is (a bfloat16 tensor or one requiring a gradient once crashed in the complex check), and
    is warned about when it spans far more than sigma (once silently skipped for those two)."""
    net, make = linear_net([1.0, 0.0], 0.0), INPUT_KINDS[kind]
    backend = TorchBackend(net, 2)
    prepared = backend.prepare(make([[0.25, -1.5]]))
    assert prepared.dtype == torch.float32 and prepared.device == backend.device and not prepared.requires_grad
    assert prepared.tolist() == [[0.25, -1.5]]
    assert SmoothedClassifier(net, 2, 0.5, seed=1).certify(make([[0.25, -1.5]]), 10, 100, 0.01) == SmoothedClassifier(
        net, 2, 0.5, seed=1).certify(np.array([[0.25, -1.5]], dtype=np.float32), 10, 100, 0.01)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match=r"^x contains NaN or infinite values \(shape \(1, 2\)\)$"):
            backend.prepare(make([[0.25, bad]]))
    if "float64" in kind or kind == "list":
        with pytest.raises(ValueError, match="x contains NaN or infinite"):
            backend.prepare(make([[0.25, 1e39]]))
    with pytest.warns(PreflightWarning, match=r"the inputs span \[0, 255\]") as warned:  # pixels 0-255, sigma 0.5
        SmoothedClassifier(net, 2, 0.5, seed=1).certify_many([make([[0.0, 255.0]])], 10, 100, 0.01, progress=False)
    assert [type(w.message) for w in warned] == [PreflightWarning]  # and nothing else (torch's grad warning once)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_gets_noise_and_inputs_on_its_device() -> None:
    net = linear_net([1.0, 0.0], 0.0).cuda()
    g = SmoothedClassifier(net, 2, 0.5, seed=0)
    assert g.backend.device.type == "cuda"
    assert g.certify(np.array([[0.4, 0.0]], np.float32), 100, 10_000, 0.001).prediction == 1
    cpu = SmoothedClassifier(linear_net([1.0, 0.0], 0.0), 2, 0.5, seed=0, device="cuda")
    assert cpu.backend.device.type == "cuda"


def test_reduced_precision_and_channels_last_agree_with_float32_and_the_cli_reports_it(
    noisy_digits_net, digits_test, tmp_path, capsys
) -> None:
    from rs_plugin.adapters.torch import FastModel, label_agreement
    from rs_plugin.cli import main
    from rs_plugin.noises import Gaussian

    x = digits_test[0][:10]
    weights = [p.detach().clone() for p in noisy_digits_net.parameters()]
    for precision, channels_last, at_least in (("bf16", False, 0.95), ("fp32", True, 0.999), ("bf16", True, 0.95)):
        fast = FastModel(noisy_digits_net, precision, channels_last)
        assert fast.model is not noisy_digits_net if channels_last else fast.model is noisy_digits_net
        assert label_agreement(noisy_digits_net, fast, x, Gaussian(0.25), 100) >= at_least
    # the network passed is left as it was, so it stays the float32 reference in its own memory format
    assert all(p.is_contiguous() and torch.equal(p, w)
               for p, w in zip(noisy_digits_net.parameters(), weights, strict=True))
    out = tmp_path / "bf16.tsv"
    code = main(["predict", "--sigma", "0.25", "--n", "100", "--max-examples", "3", "--precision", "bf16",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0 and re.search(r"bf16 predicts the float32 label on \d+\.\d% of 800 noisy inputs", err)
    assert len(out.read_text().splitlines()) == 4
    converted = tmp_path / "bf16-weights.tsv"
    code = main(["predict", "--sigma", "0.25", "--n", "100", "--max-examples", "3", "--precision", "bf16",
                 "--convert-weights", "--no-progress", "--out", str(converted)])
    assert code == 0 and len(converted.read_text().splitlines()) == 4
    code = main(["predict", "--sigma", "0.25", "--n", "100", "--max-examples", "3", "--convert-weights",
                 "--out", str(tmp_path / "fp32.tsv")])
    assert code != 0 and "convert_weights: converts the weights to --precision bf16 or fp16" in capsys.readouterr().err
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        FastModel(noisy_digits_net, "int8")


@pytest.mark.slow
def test_a_compiled_network_certifies_what_the_network_does_and_the_cli_compiles(noisy_digits_net, digits_test,
                                                                                  tmp_path) -> None:
    """``torch.compile`` (inductor, on CPU here) changes the speed, not the answers: the same counts on the same noise
    up to the rare label that float rounding flips, across batch sizes (dynamic shapes: the last batch is smaller)."""
    from rs_plugin.adapters.torch import FastModel
    from rs_plugin.cli import main

    x = digits_test[0][:3]
    eager = SmoothedClassifier(noisy_digits_net, 10, 0.25, seed=5, batch_size=300)
    compiled = SmoothedClassifier(FastModel(noisy_digits_net, compile=True), 10, 0.25, seed=5, batch_size=300)
    for index, image in enumerate(x):
        a, b = (g.certify(image, 100, 1000, 0.001, index=index) for g in (eager, compiled))
        assert a.selected == b.selected and abs(a.count - b.count) <= 2, (a, b)
    out = tmp_path / "compiled.tsv"
    assert main(["predict", "--sigma", "0.25", "--n", "100", "--max-examples", "2", "--compile", "--no-progress",
                 "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_certificates_do_not_depend_on_batch_size_and_bf16_runs() -> None:
    from rs_plugin.adapters.torch import FastModel

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).cuda()
    x = np.random.default_rng(0).random((3, 2, 2), dtype=np.float32)
    certificates = {b: SmoothedClassifier(net, 3, 0.5, seed=1, batch_size=b).certify(x, 100, 5000, 0.01, index=2)
                    for b in (7, 256, 5000)}
    assert len({(c.count, c.selected) for c in certificates.values()}) == 1
    fast = SmoothedClassifier(FastModel(net, "bf16", channels_last=False), 3, 0.5, seed=1)
    assert fast.certify(x, 100, 5000, 0.01, index=2).selected == certificates[7].selected


def recorded_inputs(model: nn.Module) -> list[torch.Tensor]:
    """A list that receives a copy of every input ``model`` is called on."""
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    return seen


def small_convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).eval()


def test_fp32_fast_model_certifies_exactly_what_the_plain_network_does(noisy_digits_net, digits_test) -> None:
    from rs_plugin.adapters.torch import FastModel

    plain = SmoothedClassifier(noisy_digits_net, 10, 0.25, seed=5, batch_size=300)
    fast = SmoothedClassifier(FastModel(noisy_digits_net), 10, 0.25, seed=5, batch_size=300)
    for index, image in enumerate(digits_test[0][:3]):
        assert plain.certify(image, 100, 1000, 0.001, index=index) == fast.certify(image, 100, 1000, 0.001, index=index)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_converted_weights_get_the_float32_noisy_input_rounded_once(precision: str, channels_last: bool) -> None:
    """``autocast=False``: the network runs in bf16/fp16 on a copy (the float32 network is left as it was); the
    backend hands it exactly the float32 noisy batches of the loop rounded to its dtype, in its memory format."""
    from rs_plugin.adapters.torch import PRECISIONS, FastModel, TorchStream, noisy_batches
    from rs_plugin.noises import Gaussian

    net, dtype = small_convnet(), PRECISIONS[precision]
    fast = FastModel(net, precision, channels_last, autocast=False)
    assert fast.input_dtype == dtype and {p.dtype for p in fast.parameters()} == {dtype}
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    seen = recorded_inputs(fast.model[0])  # FastModel calls its network's forward: its first layer sees the input
    x = torch.rand(1, 3, 6, 6)
    backend = TorchBackend(fast, 3)
    counts = backend.counts([x[0]], [250], [backend.stream(Gaussian(0.5), 7)], 100)
    expected = [b.clone() for b, _ in noisy_batches(x, [250], TorchStream(Gaussian(0.5), 7), 100)]
    assert [len(b) for b in seen] == [100, 100, 50] and counts.sum() == 250
    assert all(torch.equal(s, e.to(dtype)) for s, e in zip(seen, expected, strict=True))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert all(s.dtype == dtype and s.is_contiguous(memory_format=layout) for s in seen)


def test_converted_weights_certify_with_the_float32_labels_and_the_agreement_is_measured(noisy_digits_net,
                                                                                          digits_test) -> None:
    from rs_plugin.adapters.torch import FastModel, label_agreement
    from rs_plugin.noises import Gaussian

    x = digits_test[0][:4]
    fast = FastModel(noisy_digits_net, "bf16", autocast=False)
    assert label_agreement(noisy_digits_net, fast, x, Gaussian(0.25), 100) >= 0.95
    plain = SmoothedClassifier(noisy_digits_net, 10, 0.25, seed=2, batch_size=500)
    bf16 = SmoothedClassifier(fast, 10, 0.25, seed=2, batch_size=500)
    for index, image in enumerate(x):
        a, b = (g.certify(image, 100, 1000, 0.001, index=index) for g in (plain, bf16))
        assert a.selected == b.selected and abs(a.count - b.count) <= 50, (a, b)


def test_each_way_of_running_a_network_gets_its_own_measured_batch_size() -> None:
    """The calibration's key (the backend's identity) tells apart the network and each FastModel of it: the fastest
    batch size in bf16 or channels_last is not float32's."""
    from rs_plugin.adapters.torch import FastModel

    net = small_convnet()
    models = [net, FastModel(net), FastModel(net, "bf16"), FastModel(net, "bf16", autocast=False),
              FastModel(net, "fp16"), FastModel(net, channels_last=True)]
    assert len({TorchBackend(model, 3).identity() for model in models}) == len(models)
    assert TorchBackend(FastModel(net), 3).identity() == TorchBackend(FastModel(small_convnet()), 3).identity()


def test_the_compile_mode_reaches_torch_compile(monkeypatch) -> None:
    """``compile=True`` is torch.compile's default mode, a mode string is passed on (dynamic shapes either way); in
    a CUDA-graph mode each call marks a step and the logits are copies. torch.compile is faked: no compilation."""
    from rs_plugin.adapters.torch import FastModel

    calls: list[dict] = []

    def fake_compile(function, **options):
        calls.append(options)
        return function

    steps: list[int] = []
    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    net = linear_net([1.0, 0.0], 0.0)
    assert FastModel(net, compile=True).compile_mode == "default"
    fast = FastModel(net, compile="reduce-overhead")
    assert calls == [{"dynamic": True, "mode": "default"}, {"dynamic": True, "mode": "reduce-overhead"}]
    assert not FastModel(net).compiled and len(calls) == 2
    cert = SmoothedClassifier(fast, 2, 0.5, seed=0, batch_size=100).certify(np.array([[0.6, 0.0]], np.float32),
                                                                             100, 1000, 0.001)
    assert cert.prediction == 1 and len(steps) == 11
    with pytest.raises(ValueError, match="compile must be True, False or a mode"):
        FastModel(net, compile="fastest")


@pytest.mark.slow
def test_compiled_in_reduce_overhead_mode_certifies_what_the_network_does(noisy_digits_net, digits_test) -> None:
    """``compile="reduce-overhead"`` really compiled (inductor; on CPU no CUDA graph is recorded): the same
    certificates as the network, up to the rare label that float rounding flips."""
    from rs_plugin.adapters.torch import FastModel

    eager = SmoothedClassifier(noisy_digits_net, 10, 0.25, seed=5, batch_size=300)
    compiled = SmoothedClassifier(FastModel(noisy_digits_net, compile="reduce-overhead"), 10, 0.25, seed=5,
                                  batch_size=300)
    for index, image in enumerate(digits_test[0][:2]):
        a, b = (g.certify(image, 100, 1000, 0.001, index=index) for g in (eager, compiled))
        assert a.selected == b.selected and abs(a.count - b.count) <= 2, (a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_counts_wait_for_the_device_a_fixed_number_of_times_whatever_the_batches() -> None:
    """No host synchronisation per batch: as many synchronising calls for 16 batches as for 2 (the counts read
    back, the finiteness check), so the host queues the next batch while the device runs this one."""
    import warnings

    from rs_plugin.noises import Gaussian

    net = small_convnet().cuda()
    backend, x = TorchBackend(net, 3), torch.rand(3, 6, 6, device="cuda")

    def syncs(batches: int) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                backend.counts([x], [batches * 64], [backend.stream(Gaussian(0.5), 0)], 64)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    syncs(1)
    assert syncs(2) == syncs(16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("autocast", [True, False])
def test_cuda_bf16_certifies_with_the_float32_labels_of_the_cpu(noisy_digits_net, digits_test, autocast) -> None:
    import copy

    from rs_plugin.adapters.torch import FastModel

    cuda_net = copy.deepcopy(noisy_digits_net).cuda()
    cpu = SmoothedClassifier(noisy_digits_net, 10, 0.25, seed=1, batch_size=1000)
    bf16 = SmoothedClassifier(FastModel(cuda_net, "bf16", True, autocast=autocast), 10, 0.25, seed=1)
    for index, image in enumerate(digits_test[0][:3]):
        a, b = (g.certify(image, 100, 5000, 0.001, index=index) for g in (cpu, bf16))
        assert a.selected == b.selected and abs(a.count - b.count) < 5 * np.sqrt(5000 * 0.25), (a, b)


def test_a_batch_that_runs_out_of_device_memory_runs_in_halves_and_the_size_stays_below_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A network that runs out of memory above 64 copies: the run goes on with the same noise (the same counts as
    batches of 64), and the adaptive batch size is capped below what failed."""
    from rs_plugin import SmoothedClassifier, calibration

    monkeypatch.setattr(calibration, "_SIZERS", {})  # no size measured on this network before

    torch.manual_seed(0)
    net = OutOfMemoryAbove64()
    x = np.array([0.2, -0.1, 0.4], dtype=np.float32)
    auto = SmoothedClassifier(net, 4, 0.5, seed=3)
    certificate = auto.certify(x, 100, 3000, 0.001)
    assert certificate == SmoothedClassifier(net, 4, 0.5, seed=3, batch_size=64).certify(x, 100, 3000, 0.001)
    sizer = calibration.sizer_for(auto.backend, auto.backend.prepare(x))
    assert auto.backend.max_batch_size == 99 and sizer.max_size == 64 and sizer.size <= 64  # 100 (n0) failed


def test_on_a_gpu_the_run_starts_at_the_largest_batch_and_one_that_runs_out_of_memory_costs_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch backend knows a GPU's free memory (none on a CPU); the batch sizer then starts at the largest size it
    allows. Here a CPU network plays a GPU with 16 GiB free that runs out of memory above 64 copies: the first batch
    (16,384) runs in halves, the size is capped below it, and the certificate is that of batches of 64."""
    from rs_plugin import SmoothedClassifier, calibration

    torch.manual_seed(0)
    net = OutOfMemoryAbove64()
    x = np.array([0.2, -0.1, 0.4], dtype=np.float32)
    gpu = SmoothedClassifier(net, 4, 0.5, seed=3)
    assert gpu.backend.device_memory is None  # a CPU
    gpu.backend.device_memory = 16 << 30
    monkeypatch.setattr(calibration, "_SIZERS", {})  # a new sizer, made with the memory above
    assert gpu.batch_size_for(gpu.backend.prepare(x)) == 16384
    certificate = gpu.certify(x, 100, 30_000, 0.001)
    assert certificate == SmoothedClassifier(net, 4, 0.5, seed=3, batch_size=64).certify(x, 100, 30_000, 0.001)
    assert gpu.batch_size_for(gpu.backend.prepare(x)) <= 64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_backend_knows_the_free_memory_of_its_gpu() -> None:
    from rs_plugin import SmoothedClassifier

    g = SmoothedClassifier(nn.Linear(3, 2).cuda(), 2, 0.5, seed=0)
    total = torch.cuda.mem_get_info()[1]
    assert 0 < g.backend.device_memory <= total


class OneBadLogit(nn.Module):
    """Logits (0, 1, 0) for every row but one, where a given class gets ``bad``: a non-finite logit that need not
    be the largest (-inf in a class nobody votes for changes no vote)."""

    def __init__(self, row: int, cls: int, bad: float) -> None:
        super().__init__()
        self.row, self.cls, self.bad, self.seen = row, cls, bad, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.tensor([0.0, 1.0, 0.0]).repeat(len(x), 1)
        if self.seen <= self.row < self.seen + len(x):
            logits[self.row - self.seen, self.cls] = self.bad
        self.seen += len(x)
        return logits


@pytest.mark.parametrize(("cls", "bad"), [(0, float("-inf")), (2, float("nan")), (1, float("inf")), (0, float("nan"))])
def test_one_non_finite_logit_anywhere_in_a_long_call_is_refused(monkeypatch, cls: int, bad: float) -> None:
    """Any non-finite logit, in any class and any batch, stops the call: a single -inf in a class that is never the
    argmax too (a check of each row's largest logit alone lets that through), and in a batch whose extremes were
    already folded together with later batches'."""
    monkeypatch.setattr(TorchBackend, "FOLD", 4)
    backend = TorchBackend(OneBadLogit(row=37, cls=cls, bad=bad), 3)
    stream = backend.stream(Gaussian(0.5), 0)
    with pytest.raises(ValueError, match="NaN or infinite logits"):
        backend.counts([backend.prepare(np.zeros(2, np.float32))], [400], [stream], 10)
    fine = TorchBackend(OneBadLogit(row=10**6, cls=cls, bad=bad), 3)
    counts = fine.counts([fine.prepare(np.zeros(2, np.float32))], [400], [fine.stream(Gaussian(0.5), 0)], 10)
    assert counts.tolist() == [[0, 400, 0]]
