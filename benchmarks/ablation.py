"""Ablation on digits (issue 25): derandomized smoothing side by side with ART's PyTorchDeRandomizedSmoothing on the
same base network and test digits, randomized ablation for l0, and attacks that must never beat a certificate.

For each band width: the digits CNN trained on column- (block-) ablated digits (``digits_model(1.0,
noise="columns:b=B,shape=1xRxR", resolution=R)``, value -1 for an ablated pixel). rs-plugin's CERTIFY counts every
band once; ART's ``PyTorchDeRandomizedSmoothing(algorithm="levine2020")`` gets the same network behind an adapter that
reads its encoding (channels ``(x, 1 - x)``, both 0 where ablated) as rs-plugin's and answers with one-hot logits
(threshold 0.5: one vote per band, the argmax, as rs-plugin's base classifier votes). Printed: whether the vote
counts agree on every digit, the clean and certified accuracy of both for patches of side 1..M, the time of each, and
for every patch size ART certifies where rs-plugin does not, whether moving the touched bands' votes can change the
prediction.

The attack check, on the first ``--attacked`` digits: every position of an ``m x m`` patch (not wrapping around) filled
with 0, with 1 and with ``1 - x``, the smoothed classifier's exact prediction on each: at the certified size no patch
may change it (checked), one pixel larger the fraction of digits some patch changes is reported. For randomized
ablation (``ablation:k=K``), CERTIFY with n0 = 100, ``--n`` samples, alpha = 0.001, and a sparse attack: ``rho`` (the
certified radius) and ``rho + 1`` pixels set to ``1 - x``, chosen greedily (each flip the one that lowers the
predicted class's vote frequency most on ``--greedy-samples`` ablated copies), at random (``--restarts`` sets) or the
brightest; PREDICT (n = ``--n``, alpha = 0.001) on an attacked digit counts a success when it answers another class.

    python benchmarks/ablation.py [--resolution 8] [--columns 2 3] [--blocks 2] [--k 4 8] [--examples 360]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
from art.estimators.certification.derandomized_smoothing import PyTorchDeRandomizedSmoothing
from torch import nn

from rs_plugin import ABSTAIN, SmoothedClassifier
from rs_plugin.adapters.datasets import digits_at
from rs_plugin.adapters.training import digits_model
from rs_plugin.engine import NumpyStream, noisy_batches
from rs_plugin.noises import Noise


class FromArtEncoding(nn.Module):
    """ART's levine2020 input ``(x, 1 - x)`` with both channels 0 where ablated, as rs-plugin's (``-1`` where ablated),
    into ``net``; one-hot logits of its class (so that ART's threshold 0.5 counts exactly its argmax)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        kept = (pair[:, :1] + pair[:, 1:]) > 0.5
        logits = self.net(torch.where(kept, pair[:, :1], torch.full_like(pair[:, :1], -1.0)))
        return 100.0 * nn.functional.one_hot(logits.argmax(1), logits.shape[1]).float()


def patch_comparison(kind: str, b: int, resolution: int, x: np.ndarray, y: np.ndarray, sizes: int,
                     attacked: int) -> dict[str, int | bool]:
    """Print the comparison for one band width; return whether the vote counts agree, the (digit, size) pairs only ART
    certifies, how many of those the touched bands' votes refute, and the certificates a patch attack beat."""
    spec = f"{kind}:b={b},shape=1x{resolution}x{resolution}"
    net = digits_model(1.0, noise=spec, resolution=resolution).eval()
    smoothed = SmoothedClassifier(net, 10, 1.0, noise=spec, batch_size=1024, seed=0)
    start = time.perf_counter()
    certificates = smoothed.certify_many(x, 1, 1, 0.5, progress=False)
    ours_seconds = time.perf_counter() - start
    predictions = np.array([c.prediction for c in certificates])
    radii = np.array([c.radius for c in certificates])
    art = PyTorchDeRandomizedSmoothing(
        model=FromArtEncoding(net), loss=nn.CrossEntropyLoss(), input_shape=(1, resolution, resolution),
        nb_classes=10, ablation_size=b, algorithm="levine2020",
        ablation_type="column" if kind == "columns" else "block", threshold=0.5, logits=True, device_type="cpu",
        clip_values=(0.0, 1.0), channels_first=True,
    )
    start = time.perf_counter()
    art_counts = art.predict(x.copy(), batch_size=1024)
    art_predict_seconds = time.perf_counter() - start
    ours_counts = np.stack([smoothed.counts(xi, smoothed.noise.enumerated(xi.shape), index=i) for i, xi in
                            enumerate(x)])
    print(f"\n{spec}: {smoothed.noise.enumerated(x[0].shape)} bands; vote counts equal on every digit: "
          f"{np.array_equal(ours_counts, art_counts)}; rs-plugin CERTIFY {ours_seconds:.1f} s, ART predict "
          f"{art_predict_seconds:.1f} s")
    print(f"{'patch':>5} {'rs-plugin':>9} {'ART':>6} {'ART s':>6}   (clean accuracy: rs-plugin "
          f"{np.mean(predictions == y):.3f})")
    only_art, refuted = 0, 0
    for m in range(sizes + 1):
        start = time.perf_counter()
        clean, certified = art.eval_and_certify(x.copy(), y, size_to_certify=m, batch_size=1024, verbose=False)
        seconds = time.perf_counter() - start
        ours = np.mean((predictions == y) & (radii >= m))
        print(f"{m:>5} {ours:>9.3f} {float(certified):>6.3f} {seconds:>6.1f}   (ART clean {float(clean):.3f})")
        art_certified = art.ablator.certify(ours_counts, size_to_certify=m, label=y)[0].cpu().numpy()
        for counts in ours_counts[(m > 0) & art_certified & (radii < m)]:
            only_art += 1
            refuted += worst_case_flips(counts, smoothed.noise.touched(m))
    print(f"patch sizes >= 1 that ART certifies and rs-plugin does not: {only_art}; in {refuted} of them moving the "
          "votes of the bands a patch touches to a smaller class index changes the argmax (a tie it wins)")
    beaten = patch_attack(smoothed, x[:attacked], predictions[:attacked], radii[:attacked], resolution)
    return {"counts_equal": bool(np.array_equal(ours_counts, art_counts)), "only_art": only_art, "refuted": refuted,
            "beaten": beaten}


def worst_case_flips(counts: np.ndarray, touched: int) -> bool:
    """Whether some class wins the argmax (ties to the smaller index) once ``touched`` votes move to it from the
    top class: what a patch over ``touched`` bands can do to a base classifier that answers anything there."""
    top = int(np.argmax(counts))
    for other in range(len(counts)):
        moved = counts.copy()
        take = min(touched, int(moved[top]))
        moved[top] -= take
        moved[other] += take
        if int(np.argmax(moved)) != top:
            return True
    return False


def patches(x: np.ndarray, m: int) -> np.ndarray:
    """Every ``m x m`` patch position (not wrapping) of ``x`` filled with 0, with 1 and with ``1 - x``."""
    side = x.shape[-1]
    out = []
    for top, left in itertools.product(range(side - m + 1), repeat=2):
        for content in (np.zeros_like(x), np.ones_like(x), 1 - x):
            attacked = x.copy()
            attacked[..., top : top + m, left : left + m] = content[..., top : top + m, left : left + m]
            out.append(attacked)
    return np.stack(out)


def patch_attack(smoothed: SmoothedClassifier, x: np.ndarray, predictions: np.ndarray, radii: np.ndarray,
                 resolution: int) -> int:
    """Attack every digit at its certified patch size and one pixel above; returns the certificates beaten (0)."""
    beaten_at, beaten_above, above = 0, 0, 0
    for xi, prediction, radius in zip(x, predictions, radii, strict=True):
        for m, certified in ((int(radius), True), (int(radius) + 1, False)):
            if m == 0 or m > resolution:
                continue
            changed = (smoothed.predict_many(patches(xi, m), 1, 0.5, progress=False) != prediction).any()
            if certified:
                beaten_at += int(changed)
            else:
                beaten_above, above = beaten_above + int(changed), above + 1
    print(f"patch attack on {len(x)} digits: certificate beaten {beaten_at} times (must be 0); one pixel above the "
          f"certified size, some patch changes the prediction on {beaten_above} of {above} digits")
    assert beaten_at == 0
    return beaten_at


def l0_run(k: int, resolution: int, x: np.ndarray, y: np.ndarray, n: int, attacked: int, restarts: int,
           greedy_samples: int) -> None:
    spec = f"ablation:k={k},shape=1x{resolution}x{resolution}"
    net = digits_model(1.0, noise=spec, resolution=resolution).eval()
    smoothed = SmoothedClassifier(net, 10, 1.0, noise=spec, batch_size=1024, seed=0)
    start = time.perf_counter()
    certificates = smoothed.certify_many(x, 100, n, 0.001, progress=False)
    seconds = time.perf_counter() - start
    predictions = np.array([c.prediction for c in certificates])
    radii = np.array([c.radius for c in certificates])
    top = int(radii.max())
    print(f"\n{spec}: CERTIFY n0=100 n={n} alpha=0.001, {seconds:.1f} s for {len(x)} digits; clean accuracy "
          f"{np.mean(predictions == y):.3f}")
    print("certified accuracy at l0 radius " + ", ".join(
        f"{r}: {np.mean((predictions == y) & (radii >= r)):.3f}" for r in range(top + 2)))
    rng = np.random.default_rng(0)
    outcomes = {True: [0, 0], False: [0, 0]}  # certified budget or one above: [beaten, tried]
    for index, (xi, prediction, radius) in enumerate(zip(x[:attacked], predictions[:attacked], radii[:attacked],
                                                                  strict=True)):
        if prediction == ABSTAIN:
            continue
        greedy = greedy_flips(net, smoothed.noise, xi, prediction, int(radius) + 1, greedy_samples, index)
        for budget, certified in ((int(radius), True), (int(radius) + 1, False)):
            if budget == 0:
                continue
            flat = xi.reshape(-1)
            choices = [np.argsort(-flat)[:budget]] + [rng.choice(flat.size, budget, replace=False)
                                                      for _ in range(restarts)]
            candidates = [greedy[budget]] if budget in greedy else []
            for chosen in choices:
                attacked_x = flat.copy()
                attacked_x[chosen] = 1 - attacked_x[chosen]
                candidates.append(attacked_x.reshape(xi.shape))
            answers = smoothed.predict_many(candidates, n, 0.001, indices=[10_000 * index + budget * 100 + j for j
                                                                           in range(len(candidates))], progress=False)
            outcomes[certified][0] += int(((answers != prediction) & (answers != ABSTAIN)).any())
            outcomes[certified][1] += 1
    print(f"sparse attack: at the certified radius it beat {outcomes[True][0]} of {outcomes[True][1]} certificates "
          f"(at most an alpha fraction may fail); one pixel above, {outcomes[False][0]} of {outcomes[False][1]} digits")


def greedy_flips(net: nn.Module, noise: Noise, x: np.ndarray, label: int, budget: int, samples: int,
                 seed: int) -> dict[int, np.ndarray]:
    """A greedy sparse attack on the smoothed classifier: ``budget`` times, flip (``1 - x``) the pixel whose flip
    lowers ``label``'s vote frequency most, estimated on ``samples`` ablated copies with the same masks for every
    candidate (common random numbers). Returns the attacked input after each number of flips >= 1, by that number."""
    current, flipped, after = x.copy(), set(), {}
    for step in range(1, budget + 1):
        which = [p for p in range(x.size) if p not in flipped]
        candidates = np.repeat(current[None], len(which), axis=0)
        flat = candidates.reshape(len(which), -1)
        flat[np.arange(len(which)), which] = 1 - flat[np.arange(len(which)), which]
        votes = np.zeros(len(which))
        streams = [NumpyStream(noise, seed) for _ in which]
        with torch.no_grad():
            for batch, owner in noisy_batches(candidates, [samples] * len(which), streams, 4096):
                np.add.at(votes, owner, net(torch.from_numpy(batch)).argmax(1).numpy() == label)
        best = int(np.argmin(votes))
        current = candidates[best].copy()
        flipped.add(which[best])
        after[step] = current
    return after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--columns", type=int, nargs="*", default=[2, 3], help="column band widths")
    parser.add_argument("--blocks", type=int, nargs="*", default=[2], help="block sides")
    parser.add_argument("--k", type=int, nargs="*", default=[4, 8], help="kept pixels of randomized ablation")
    parser.add_argument("--examples", type=int, default=360, help="test digits (default: all 360)")
    parser.add_argument("--attacked", type=int, default=100, help="digits attacked")
    parser.add_argument("--n", type=int, default=2000, help="CERTIFY's and PREDICT's n for randomized ablation")
    parser.add_argument("--restarts", type=int, default=4, help="random pixel sets of the sparse attack")
    parser.add_argument("--greedy-samples", type=int, default=100,
                        help="ablated copies per candidate pixel of the greedy sparse attack")
    parser.add_argument("--sizes", type=int, default=3, help="largest patch side in the table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = (t.numpy() for t in digits_at("test", args.resolution))
    x, y = x[: args.examples], y[: args.examples]
    for b in args.columns:
        patch_comparison("columns", b, args.resolution, x, y, args.sizes, args.attacked)
    for b in args.blocks:
        patch_comparison("blocks", b, args.resolution, x, y, args.sizes, args.attacked)
    for k in args.k:
        l0_run(k, args.resolution, x, y, args.n, args.attacked, args.restarts, args.greedy_samples)


if __name__ == "__main__":
    main()
