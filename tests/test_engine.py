"""The one noisy-evaluation engine: its batch plan, per-example streams, framework-neutral noises, and what it
refuses to certify (a model answering NaN or infinity)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rs_plugin import SmoothedClassifier, hookimpl
from rs_plugin.engine import NumpyStream, noisy_batches, plan
from rs_plugin.noises import Gaussian, Noise
from rs_plugin.plugins import get_plugin_manager


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_plan_puts_every_copy_in_exactly_one_batch_in_example_order(batch_size: int) -> None:
    nums = [5, 0, 12, 1, 9]
    batches = list(plan(nums, batch_size))
    assert all(0 < sum(c for _, c in b) <= batch_size for b in batches)
    rows = [e for b in batches for e, c in b for _ in range(c)]
    assert rows == [e for e, num in enumerate(nums) for _ in range(num)]


def test_each_examples_noise_does_not_depend_on_batch_size_or_packing() -> None:
    xs = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)

    def noisy_rows(batch_size: int, examples: list[int]) -> list[np.ndarray]:
        streams = [NumpyStream(Gaussian(0.5), 10 + e) for e in examples]
        batches = noisy_batches(xs[examples], [6] * len(examples), streams, batch_size)
        rows = np.concatenate([batch.copy() for batch, _ in batches])
        return [rows[6 * k : 6 * (k + 1)] for k in range(len(examples))]

    alone = noisy_rows(1000, [1])[0]
    for batch_size in (1, 4, 5, 1000):
        np.testing.assert_array_equal(noisy_rows(batch_size, [0, 1, 2])[1], alone)
    assert (alone - xs[1]).std() > 0.3  # noise of std 0.5 was added


@pytest.mark.parametrize("family", ["gaussian", "laplace", "uniform"])
def test_a_torch_stream_yields_one_draw_of_its_generator_however_it_is_asked(family: str) -> None:
    """A CPU stream's values are those of one sampler call for everything, whatever the sizes of the fills: the
    stream (and every certificate) is independent of batch sizes, and of the sampler's block size."""
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.torch import DEVICE_SAMPLERS, TorchStream
    from rs_plugin.plugins import make_noise

    noise, sizes = make_noise(family, 0.5), [1, 3, 16, 17, 100, 4095, 4097, 64, 5000, 2]
    stream = TorchStream(noise, 7)
    pieces = torch.cat([stream.fill(torch.empty(size)) for size in sizes])
    whole = torch.empty(-(-sum(sizes) // 16) * 16)
    DEVICE_SAMPLERS[type(noise)](noise, whole, torch.Generator().manual_seed(7))
    assert torch.equal(pieces, whole[: sum(sizes)])


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_the_torch_loop_computes_the_owners_of_the_plan_on_the_device(batch_size: int) -> None:
    """The torch loop's ``owner`` (computed on the device from the rows' positions, no host copy per batch) is
    :func:`rs_plugin.engine.owners` of each batch of the plan, examples without copies included; and the votes the
    backend adds without ``bincount`` are ``bincount``'s."""
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.torch import TorchBackend, TorchStream
    from rs_plugin.adapters.torch import noisy_batches as torch_batches
    from rs_plugin.engine import owners

    nums = [3, 0, 5, 1, 0, 4, 0, 21]
    xs = torch.rand(len(nums), 2)
    got = [owner for _, owner in torch_batches(xs, nums, TorchStream(Gaussian(0.1), 0), batch_size)]
    layouts = list(plan(nums, batch_size))
    expected = [owners(segments) for segments in layouts]
    assert len(got) == len(expected)
    assert all(g.dtype == torch.int64 and np.array_equal(g.numpy(), e) for g, e in zip(got, expected, strict=True))
    # a batch laid out like the one before it gets the same (unmodified) owner tensor, and only such a batch
    reused = [a is b for a, b in itertools.pairwise(got)]
    assert reused == [a == b for a, b in itertools.pairwise(layouts)] and (batch_size == 100 or any(reused))
    net = torch.nn.Linear(2, 3)
    streams = [TorchStream(Gaussian(0.5), e) for e in range(len(nums))]
    counts = TorchBackend(net, 3).counts(list(xs), nums, streams, batch_size)
    streams = [TorchStream(Gaussian(0.5), e) for e in range(len(nums))]
    votes = [owner * 3 + net(batch).argmax(1) for batch, owner in torch_batches(xs, nums, streams, batch_size)]
    assert np.array_equal(counts, torch.bincount(torch.cat(votes), minlength=24).view(8, 3).numpy())


class NumpyOnly(Noise):
    """A plugin noise that knows only numpy: a Gaussian drawn by its own code."""

    name = "numpy-only"
    norm = "l2"

    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        out[...] = rng.normal(0.0, self.sigma, size=out.shape)

    def radius(self, p_lower: float) -> float:
        return Gaussian(self.sigma).radius(p_lower)

    def p_needed(self, radius: float) -> float:
        return Gaussian(self.sigma).p_needed(radius)


class Box(NumpyOnly):
    """A plugin noise certifying in linf (its radius formula is a stand-in)."""

    name = "box"
    norm = "linf"


class NoisePlugin:
    @hookimpl
    def rs_plugin_add_noises(self) -> dict[str, type[Noise]]:
        return {"numpy-only": NumpyOnly, "box": Box}


@pytest.fixture
def plugin_noises():
    pm = get_plugin_manager()
    plugin = NoisePlugin()
    pm.register(plugin, name="test-noises")
    yield
    pm.unregister(plugin)


def test_a_numpy_only_plugin_noise_certifies_a_torch_model_as_a_numpy_one(plugin_noises) -> None:
    """The torch backend falls back to the noise's numpy sampler: the same noise, the same certificate."""
    torch = pytest.importorskip("torch")
    weight = np.array([[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5]], dtype=np.float32)
    net = torch.nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.from_numpy(weight))
    x = np.array([0.8, 0.1, 0.2], dtype=np.float32)
    by_torch = SmoothedClassifier(net, 2, 0.5, noise="numpy-only", seed=0, batch_size=300)
    by_numpy = SmoothedClassifier(lambda b: b @ weight.T, 2, 0.5, noise="numpy-only", seed=0)
    by_torch, by_numpy = (g.certify(x, 100, 2000, 0.001) for g in (by_torch, by_numpy))
    assert by_torch.count == by_numpy.count and by_torch.radius == by_numpy.radius > 0


def test_a_linf_plugin_noise_gets_radii_that_agree_with_its_certificate(plugin_noises) -> None:
    g = SmoothedClassifier(lambda b: np.zeros(len(b), dtype=np.int64), 2, 0.5, noise="box", seed=0)
    cert = g.certify(np.zeros((2, 8), np.float32), 100, 1000, 0.001)
    assert cert.norm == "linf" and cert.radius > 0
    assert cert.radii == {"l1": cert.radius, "l2": cert.radius, "linf": cert.radius}  # the linf ball holds them all


@pytest.mark.parametrize(("norm", "expected"), [("l1", (1.0, 1 / 4, 1 / 16)), ("l2", (1.0, 1.0, 1 / 4))])
def test_radii_in_other_norms_are_the_largest_balls_inside_the_certified_one(norm, expected) -> None:
    noise = type("N", (NumpyOnly,), {"norm": norm})(1.0)
    radii = noise.radii(1.0, 16)
    assert (radii["l1"], radii["l2"], radii["linf"]) == pytest.approx(expected)
    # Check the containment on the worst directions: a unit vector's corner and a basis vector.
    corner, axis = np.full(16, 1.0), np.eye(16)[0]
    order = {"l1": 1, "l2": 2}[norm]
    for direction, name in ((corner, "linf"), (axis, "l1"), (corner / math.sqrt(16), "l2")):
        scaled = direction / np.linalg.norm(direction, {"l1": 1, "l2": 2, "linf": np.inf}[name]) * radii[name]
        assert np.linalg.norm(scaled, order) <= 1.0 + 1e-9


def test_a_numpy_model_answering_nan_is_never_certified() -> None:
    def broken(batch: np.ndarray) -> np.ndarray:
        scores = np.zeros((len(batch), 2))
        scores[:, 0] = np.nan
        return scores

    g = SmoothedClassifier(broken, 2, 0.5, seed=0)
    with pytest.raises(ValueError, match=r"NaN or infinite scores.*never certifies"):
        g.certify(np.zeros(3, np.float32), 10, 100, 0.001)


def test_a_torch_model_answering_nan_or_inf_is_never_certified() -> None:
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.torch import SmoothedModule

    for bad in (float("nan"), float("inf")):
        net = torch.nn.Linear(3, 2)
        with torch.no_grad():
            net.bias.fill_(bad)
        with pytest.raises(ValueError, match="NaN or infinite logits"):
            SmoothedClassifier(net, 2, 0.5, seed=0).certify(np.zeros(3, np.float32), 10, 100, 0.001)
        with pytest.raises(ValueError, match="NaN or infinite logits"):
            SmoothedModule(net, 0.5, num_noise=4)(torch.zeros(2, 3))


def test_the_art_estimator_refuses_a_diverged_model() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("art")
    from art.estimators.classification import PyTorchClassifier

    from rs_plugin.adapters.art import SmoothedEstimator

    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.bias.fill_(float("nan"))
    classifier = PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), input_shape=(3,), nb_classes=2,
                                   clip_values=(0, 1))
    estimator = SmoothedEstimator(classifier, 0.25, num_noise=8, seed=0, output="logits")
    x = np.full((2, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match="NaN or infinite"):
        estimator.predict(x)
    with pytest.raises(ValueError, match="NaN or infinite"):
        estimator.certify(x, n=100, progress=False)


def test_the_art_estimator_refuses_inputs_outside_its_clip_values(digits_test) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("art")
    from art.estimators.classification import PyTorchClassifier

    from rs_plugin.adapters.art import SmoothedEstimator

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    classifier = PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                                   clip_values=(0, 1))
    estimator = SmoothedEstimator(classifier, 0.25, num_noise=8, seed=0)
    raw = (digits_test[0][:4] * 255).astype(np.uint8)  # 0-255 pixels, the classifier expects [0, 1]
    with pytest.raises(ValueError, match=r"outside the classifier's clip_values \[0, 1\]: scale x"):
        estimator.predict(raw)


@pytest.mark.parametrize("model", ["numpy", "torch"])
def test_certificates_do_not_depend_on_the_batch_size(model: str) -> None:
    weight = np.array([[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5]], dtype=np.float32)
    if model == "torch":
        torch = pytest.importorskip("torch")
        base = torch.nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            base.weight.copy_(torch.from_numpy(weight))
    else:
        def base(b):
            return b @ weight.T

    x = np.array([0.3, 0.1, 0.2], dtype=np.float32)
    certificates = {
        batch: SmoothedClassifier(base, 2, 0.5, seed=3, batch_size=batch).certify(x, 100, 3000, 0.001, index=7)
        for batch in (7, 64, 1000, 5000)
    }
    assert len({(c.count, c.radius, c.selected) for c in certificates.values()}) == 1


def linear_bases(model: str):
    weight = np.array([[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5], [0.2, 0.1, -0.3]], dtype=np.float32)
    if model == "numpy":
        return lambda b: b @ weight.T
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.from_numpy(weight))
    return net


@pytest.mark.parametrize("model", ["numpy", "torch"])
def test_packed_predict_many_and_certify_many_equal_one_example_at_a_time(model: str) -> None:
    """Several examples per forward pass (batch 1000, n = 100: ten examples a pass) change no answer."""
    xs = np.random.default_rng(0).uniform(-0.3, 0.3, size=(23, 3)).astype(np.float32)
    g = SmoothedClassifier(linear_bases(model), 3, 0.5, seed=1, batch_size=1000)
    packed = g.predict_many(xs, 100, 0.05, indices=range(5, 28), progress=False)
    alone = [g.predict(x, 100, 0.05, index=i) for i, x in zip(range(5, 28), xs, strict=True)]
    assert packed.tolist() == alone and len(set(alone)) > 1  # a mix of classes and abstentions
    for batch_size in (1000, 37):
        g.batch_size = batch_size
        packed = g.certify_many(xs, 100, 300, 0.01, progress=False)
        assert packed == [g.certify(x, 100, 300, 0.01, index=i) for i, x in enumerate(xs)]


def test_predict_many_at_small_n_shares_each_backend_call_among_a_chunk_of_inputs() -> None:
    """PREDICT at n = 20 with batches of 64: a round takes in inputs until they ask for a chunk of work (16 batches
    at a fixed size) and fill its last batch, so that the per-call cost is shared by about 50 inputs, and holds no
    more than that; the answers are one at a time's."""
    xs = np.random.default_rng(2).uniform(-0.3, 0.3, size=(200, 3)).astype(np.float32)
    g = SmoothedClassifier(linear_bases("numpy"), 3, 0.5, seed=2, batch_size=64)
    inputs_per_call: list[int] = []
    counts = g.backend.counts

    def counted(xs, nums, streams, batch_size):
        inputs_per_call.append(len(xs))
        return counts(xs, nums, streams, batch_size)

    g.backend.counts = counted
    packed = g.predict_many(xs, 20, 0.05, progress=False)
    assert len(inputs_per_call) <= 5 and max(inputs_per_call) <= 17 * 64 // 20 + 1, inputs_per_call
    g.backend.counts = counts
    assert packed.tolist() == [g.predict(x, 20, 0.05, index=i) for i, x in enumerate(xs)]


@pytest.mark.parametrize("options", [{"target_radius": [0.1, 0.3]}, {"radius_tolerance": 0.05},
                                     {"target_radius": 0.2, "sequence": "bonferroni"}])
def test_packed_sequential_certify_many_advances_in_rounds_with_the_answers_of_one_at_a_time(options) -> None:
    xs = np.random.default_rng(1).uniform(-0.4, 0.4, size=(12, 3)).astype(np.float32)
    g = SmoothedClassifier(linear_bases("numpy"), 3, 0.5, seed=4, batch_size=800)
    packed = g.certify_many(xs, 100, 20_000, 0.001, progress=False, **options)
    alone = [g.certify(x, 100, 20_000, 0.001, index=i, **options) for i, x in enumerate(xs)]
    assert packed == alone
    assert len({c.num_samples for c in alone}) > 1  # examples stopped at different stages


@pytest.mark.parametrize("smoothing", ["hard", "soft"])
def test_sequential_certify_many_fills_its_forward_passes_across_inputs_and_stages(smoothing) -> None:
    """Inputs stop at different stages; the inputs still in progress and newly taken ones share each forward pass,
    so that most passes are full (a GPU pays per pass, not per row), and the answers are one at a time's."""
    xs = np.random.default_rng(3).uniform(-0.4, 0.4, size=(60, 3)).astype(np.float32)
    base = linear_bases("numpy")
    rows: list[int] = []

    def counted(batch: np.ndarray) -> np.ndarray:
        rows.append(len(batch))
        return base(batch)

    g = SmoothedClassifier(counted, 3, 0.5, seed=4, batch_size=1000)
    packed = g.certify_many(xs, 100, 50_000, 0.001, target_radius=[0.1, 0.3], smoothing=smoothing, progress=False)
    fill = sum(rows) / (1000 * len(rows))
    assert fill >= 0.75, (fill, len(rows))  # one input at a time after another: under half
    assert packed[:5] == [g.certify(x, 100, 50_000, 0.001, index=i, target_radius=[0.1, 0.3], smoothing=smoothing)
                          for i, x in enumerate(xs[:5])]
    assert len({c.num_samples for c in packed}) > 3  # inputs stopped at different stages
