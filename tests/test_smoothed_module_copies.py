"""SmoothedModule survives what torch code does to modules: copy.deepcopy, pickling and a state_dict round trip,
with a seeded module's noise stream carried over (so that a copy computes exactly what the original would)."""

from __future__ import annotations

import copy
import io
import pickle

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from rs_plugin.adapters.torch import SmoothedModule  # noqa: E402


def small_base(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def outputs_and_gradients(module: SmoothedModule, x: torch.Tensor) -> list[torch.Tensor]:
    """Two successive forward passes (fresh noise each) and the input gradient of the second."""
    first = module(x).detach()
    inputs = x.clone().requires_grad_(True)
    second = module(inputs)
    (grad,) = torch.autograd.grad(second[:, 0].sum(), inputs)
    return [first, second.detach(), grad]


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_a_copy_of_a_seeded_module_continues_its_noise_stream(how):
    original = SmoothedModule(small_base(0), 0.5, num_noise=6, batch_size=4, seed=3)  # chunked: 6 draws x 2 inputs
    x = torch.rand(2, 4)
    original(x)  # the generator exists and has moved on
    if how == "deepcopy":
        duplicate = copy.deepcopy(original)
    elif how == "pickle":
        duplicate = pickle.loads(pickle.dumps(original))
    else:
        buffer = io.BytesIO()
        torch.save(original, buffer)
        buffer.seek(0)
        duplicate = torch.load(buffer, weights_only=False)
    assert duplicate is not original and duplicate.base is not original.base
    assert (duplicate.sigma, duplicate.num_noise, duplicate.batch_size, duplicate.seed) == (0.5, 6, 4, 3)
    assert duplicate.noise.name == original.noise.name and duplicate.training == original.training
    for got, want in zip(outputs_and_gradients(duplicate, x), outputs_and_gradients(original, x), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    with torch.no_grad():  # the copy owns its weights
        duplicate.base[1].weight.add_(1.0)
    assert not torch.equal(duplicate.base[1].weight, original.base[1].weight)


def test_state_dict_is_the_base_networks_and_round_trips():
    """The state dict holds the base network's tensors only (under ``base.``): saved with torch.save and loaded
    with weights_only=True into a module around a freshly initialised base, it gives the same smoothed outputs as
    the trained module would (same seed); the base alone loads it back without its prefix."""
    trained = SmoothedModule(small_base(0), 0.25, num_noise=5, seed=1)
    state = trained.state_dict()
    assert set(state) == {f"base.{name}" for name in small_base(0).state_dict()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = SmoothedModule(small_base(7), 0.25, num_noise=5, seed=1)
    assert not torch.equal(restored.base[1].weight, trained.base[1].weight)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.rand(3, 4)
    fresh = SmoothedModule(trained.base, 0.25, num_noise=5, seed=1)
    torch.testing.assert_close(restored(x), fresh(x), rtol=0, atol=0)  # same seed, same weights: same outputs
    base = small_base(9)
    base.load_state_dict({name.removeprefix("base."): tensor for name, tensor in state.items()})
    torch.testing.assert_close(base(x), trained.base(x), rtol=0, atol=0)
