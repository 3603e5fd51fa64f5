"""SmoothedModule: the differentiable soft smoothed classifier that torchattacks attacks take as their model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy.stats import norm  # noqa: E402
from torch import nn  # noqa: E402

from rs_plugin.adapters.torch import SmoothedModule  # noqa: E402


def linear_base(dim: int = 4, classes: int = 3, seed: int = 0, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(dim, classes)).to(dtype)


def drawn_noise(module: SmoothedModule, x: torch.Tensor, noise_seed: int) -> torch.Tensor:
    """The noise ``module`` adds for ``noise_seed``: ``(num_noise, B, *shape)``, from each input's own stream."""
    streams = module.streams(len(x), x.device, noise_seed)
    return torch.stack([s.fill(torch.empty(module.num_noise, *x.shape[1:], dtype=x.dtype)) for s in streams], 1)


def soft_reference(base: nn.Module, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """log of the mean softmax over the draws, one input at a time and one draw at a time."""
    rows = []
    for b in range(len(x)):
        probs = [torch.softmax(base((x[b] + noise[k, b])[None]), -1)[0] for k in range(len(noise))]
        rows.append(torch.stack(probs).mean(0).log())
    return torch.stack(rows)


def test_output_is_the_log_of_the_softmax_averaged_over_the_noise() -> None:
    base = linear_base()
    module = SmoothedModule(base, 0.5, num_noise=7, seed=1)
    x = torch.rand(5, 4)
    out = module(x, noise_seed=11)
    assert out.shape == (5, 3)
    torch.testing.assert_close(out, soft_reference(base, x, drawn_noise(module, x, 11)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(5))


def test_chunking_changes_neither_values_nor_gradients() -> None:
    """batch_size=3 splits 5 inputs x 8 draws into 14 chunks (checkpointed); batch_size=1000 uses one."""
    base = linear_base()
    x = torch.rand(5, 4)
    outputs, grads = [], []
    for batch_size in (3, 1000):
        xi = x.clone().requires_grad_(True)
        out = SmoothedModule(base, 0.5, num_noise=8, batch_size=batch_size)(xi, noise_seed=4)
        outputs.append(out)
        grads.append(torch.autograd.grad(out[:, 1].sum(), xi)[0])
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("batch_size", [2, 1000])
def test_gradient_matches_finite_differences(batch_size: int) -> None:
    base = linear_base(dtype=torch.float64)
    module = SmoothedModule(base, 0.3, num_noise=6, batch_size=batch_size, seed=2)
    x = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: module(inp, noise_seed=9), (x,))


def test_soft_probability_estimates_the_gaussian_smoothed_probability() -> None:
    """A steep binary linear base is a step function, whose smoothed probability is Phi(margin / sigma)."""
    w = torch.tensor([0.6, -0.8, 0.0, 0.0])  # unit norm
    base = nn.Linear(4, 2)
    with torch.no_grad():
        base.weight.copy_(torch.stack([w, -w]) * 500)
        base.bias.copy_(torch.tensor([-0.1, 0.1]) * 500)  # class 0 where w.x > 0.1
    sigma, num_noise = 0.25, 20_000
    module = SmoothedModule(base, sigma, num_noise=num_noise, batch_size=50_000, seed=3)
    x = torch.tensor([[0.4, 0.2, 0.5, 0.5], [0.1, 0.1, 0.0, 1.0], [0.3, 0.5, 0.2, 0.2]])
    with torch.no_grad():
        p0 = module(x)[:, 0].exp().numpy()
    expected = norm.cdf((x.numpy() @ w.numpy() - 0.1) / sigma)
    # Monte Carlo standard error at most 0.5 / sqrt(20000) = 0.0035; 5 standard errors.
    np.testing.assert_allclose(p0, expected, atol=0.018)


def test_seed_makes_noise_reproducible_and_every_noise_family_works() -> None:
    base = linear_base()
    x = torch.rand(2, 4)
    for family in ("gaussian", "laplace", "uniform"):
        a = SmoothedModule(base, 0.5, num_noise=4, noise=family, seed=5)
        b = SmoothedModule(base, 0.5, num_noise=4, noise=family, seed=5)
        torch.testing.assert_close(a(x), b(x))
        noise = drawn_noise(a, torch.zeros(2, 2000), 0)
        assert abs(noise.std().item() - 0.5) < 0.02, family
    assert not torch.equal(a(x), a(x)), "successive calls draw fresh noise"


def test_module_follows_the_base_mode_and_torchattacks_evaluates_batchnorm_in_eval_mode() -> None:
    torchattacks = pytest.importorskip("torchattacks")
    torch.manual_seed(0)
    base = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    module = SmoothedModule(base, 0.25, num_noise=4)
    assert module.training and base.training  # a fresh module takes its base's mode
    before = base[2].running_mean.clone()
    images, labels = torch.rand(6, 1, 2, 2), torch.zeros(6, dtype=torch.long)  # PGDL2 wants (N, C, H, W)
    adv = torchattacks.PGDL2(module, eps=0.5, alpha=0.1, steps=3)(images, labels)
    assert adv.shape == images.shape
    torch.testing.assert_close(base[2].running_mean, before)  # batch statistics were not updated
    assert module.training and base.training  # the caller's mode is restored
    assert not SmoothedModule(base.eval(), 0.25).training


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_noise": 0}, ValueError, "num_noise must be at least 1"),
        ({"num_noise": 2.5}, TypeError, "num_noise must be an int"),
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
        ({"sigma": 0.0}, ValueError, "sigma must be a positive"),
        ({"noise": "cauchy"}, ValueError, "unknown noise 'cauchy'"),
        ({"seed": -1}, ValueError, "seed must be None or a non-negative int"),
        ({"base": lambda x: x}, TypeError, "base must be a torch.nn.Module"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, error: type, match: str) -> None:
    arguments = {"base": linear_base(), "sigma": 0.25, **kwargs}
    with pytest.raises(error, match=match):
        SmoothedModule(arguments.pop("base"), arguments.pop("sigma"), **arguments)


def test_bad_inputs_are_named() -> None:
    module = SmoothedModule(linear_base(), 0.25, num_noise=2)
    with pytest.raises(ValueError, match="batch dimension"):
        module(torch.rand(4))
    with pytest.raises(TypeError, match=r"floating-point torch\.Tensor"):
        module(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="x contains NaN or infinite values"):
        module(torch.tensor([[0.5, float("nan"), 0.0, 0.0]]))
    with pytest.raises(TypeError, match=r"x must have the base's dtype torch.float32, got torch.float64"):
        module(torch.rand(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="base: the base classifier raised RuntimeError"):
        module(torch.rand(2, 5))
    with pytest.raises(ValueError, match="expected logits"):
        SmoothedModule(nn.Flatten(0), 0.25, num_noise=2)(torch.rand(2, 4))


def test_a_base_with_converted_weights_takes_float32_inputs_and_float32_noise() -> None:
    """A FastModel in bf16 weights takes x in float32: the noise is drawn and added in float32, each noisy copy
    rounded once inside it; gradients reach x in float32."""
    from rs_plugin.adapters.torch import FastModel

    fast = FastModel(linear_base(), "bf16", autocast=False)
    module = SmoothedModule(fast, 0.25, num_noise=8, seed=0)
    x = torch.rand(3, 4, requires_grad=True)
    out = module(x, noise_seed=1)
    plain = SmoothedModule(linear_base(), 0.25, num_noise=8, seed=0)(x, noise_seed=1)
    (grad,) = torch.autograd.grad(out[:, 0].sum(), x)
    assert out.dtype == grad.dtype == torch.float32 and torch.isfinite(grad).all()
    assert torch.allclose(out, plain, atol=0.05)


def test_loading_the_plugins_does_not_import_torch() -> None:
    code = (
        "import sys, rs_plugin.adapters.plugin_torch, rs_plugin.attacks; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_base_device() -> None:
    base = linear_base().cuda()
    module = SmoothedModule(base, 0.25, num_noise=4, seed=0)
    x = torch.rand(3, 4, device="cuda", requires_grad=True)
    out = module(x)
    assert out.device.type == "cuda"
    (grad,) = torch.autograd.grad(out[:, 0].sum(), x)
    assert grad.device.type == "cuda" and torch.isfinite(grad).all()


def test_with_gradients_the_measured_batch_size_is_one_whose_backward_pass_fits_in_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A base whose backward pass runs out of device memory above 24 copies (its forward pass fits at any size,
    and inference measures fastest at 256): an attack's gradient through the smoothed module with a measured batch
    size runs in batches that fit, gives the gradient of a fixed batch size of 16, and the probe moves no running
    statistic and no parameter's .grad. The inference size itself (the deliberately wrong way) runs out."""
    from rs_plugin.adapters.torch import module

    monkeypatch.setattr(module, "best_batch_size", lambda backend, noise, x: (256, 1000.0))

    class OutOfMemoryInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx: object, z: torch.Tensor) -> torch.Tensor:
            return z.clone()

        @staticmethod
        def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
            if len(grad) > 24:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return grad

    class Base(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm, self.linear = nn.BatchNorm1d(3), nn.Linear(3, 4)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.linear(OutOfMemoryInBackward.apply(self.norm(z)))

    torch.manual_seed(0)
    base = Base().train()
    stats = base.norm.running_mean.clone()
    x = torch.tensor([[0.2, -0.1, 0.4], [0.5, 0.3, -0.2]])
    measured = SmoothedModule(base, 0.5, num_noise=40, seed=1)
    with torch.no_grad():
        assert measured.batch_size_for(x) == 256  # inference alone fits at the measured size
    assert torch.equal(base.norm.running_mean, stats)
    size = measured.batch_size_for(x)
    assert size == 16 and base.linear.weight.grad is None and torch.equal(base.norm.running_mean, stats)
    base.eval()
    grads = []
    for smoothed in (measured, SmoothedModule(base, 0.5, num_noise=40, seed=1, batch_size=16)):
        adv = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(smoothed(adv, noise_seed=7)[:, 0].sum(), adv)
        grads.append(grad)
    torch.testing.assert_close(grads[0], grads[1])
    with pytest.raises(torch.OutOfMemoryError):  # the deliberately wrong way: the inference size
        adv = x.clone().requires_grad_(True)
        wrong = SmoothedModule(base, 0.5, num_noise=40, seed=1, batch_size=256)
        torch.autograd.grad(wrong(adv, noise_seed=7)[:, 0].sum(), adv)


def test_on_a_gpu_the_measured_batch_size_starts_at_the_largest_and_keeps_below_what_ran_out_of_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CPU base posing as a GPU with 16 GiB free on which batches above 64 copies run out of memory: the measured
    size starts at the top (16,384 rows of 3 values) and is capped at 64, and the module's log-probabilities and
    gradients are those of a fixed batch size of 64. Started small as on a CPU (the deliberately wrong way) the
    measurement kept a size far above 64 that had run only in halves (4096 here), where inference runs out of memory."""
    from simulated_devices import OutOfMemoryAbove64

    from rs_plugin import calibration
    from rs_plugin.adapters.torch import module

    class PosingAsGpu(module.TorchBackend):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.device_memory = 16 << 30

    monkeypatch.setattr(calibration, "_SIZERS", {})
    monkeypatch.setattr(module, "TorchBackend", PosingAsGpu)
    torch.manual_seed(0)
    base = OutOfMemoryAbove64()
    x = torch.tensor([[0.2, -0.1, 0.4], [0.5, 0.3, -0.2]])
    measured, fixed = (SmoothedModule(base, 0.5, num_noise=100, seed=1, batch_size=b) for b in (None, 64))
    with torch.no_grad():
        assert measured.batch_size_for(x) <= 64
        torch.testing.assert_close(measured(x, noise_seed=3), fixed(x, noise_seed=3))
    (sizer,) = (s for key, s in calibration._SIZERS.items() if key[0] == "once")
    assert sizer.moves[0] == (16384, 64, 0.0) and max(sizer.rates) == 64
    grads = []
    for smoothed in (measured, fixed):
        adv = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(smoothed(adv, noise_seed=7)[:, 0].sum(), adv)
        grads.append(grad)
    torch.testing.assert_close(grads[0], grads[1])
