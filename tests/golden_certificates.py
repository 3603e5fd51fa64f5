"""The fixed-seed certificate table that pins PREDICT and CERTIFY across refactorings.

``python tests/golden_certificates.py`` writes ``tests/data/golden/certificates.json`` from the code as it stands;
``tests/test_golden.py`` recomputes every entry and requires it to be identical, bit for bit. The table was taken
before the core was reshaped (issue 21) and must never be regenerated to make a change pass.

Base classifiers with fixed weights, so that the table does not depend on training: the digits CNN of
``tests/data/golden/digits_cnn.pt`` (a torch model) and a nearest-centroid classifier in numpy (a plain callable),
on six digits spread over the test split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent / "data" / "golden"
TABLE = HERE / "certificates.json"
WEIGHTS = HERE / "digits_cnn.pt"
NUM_EXAMPLES = 6
NOISES = {"gaussian": 0.25, "laplace": 0.25, "uniform": 0.5}


def centroid_classifier() -> Any:
    """Nearest class mean of the digits training split, in float32 numpy: labels (B,)."""
    from rs_plugin.datasets import digits_arrays

    x, y = digits_arrays("train")
    means = np.stack([x[y == c].reshape(-1, 64).mean(0) for c in range(10)]).astype(np.float32)

    def base(batch: np.ndarray) -> np.ndarray:
        flat = batch.reshape(len(batch), -1)
        return ((flat[:, None, :] - means[None]) ** 2).sum(-1).argmin(1).astype(np.int64)

    return base


def torch_classifier() -> Any:
    from rs_plugin.adapters.checkpoints import load_checkpoint

    return load_checkpoint(WEIGHTS)[0]


def _certificate(c: Any) -> dict[str, Any]:
    return {"prediction": c.prediction, "radius": repr(c.radius), "p_lower": repr(c.p_lower), "count": c.count,
            "n": c.n, "num_samples": c.num_samples, "selected": c.selected}


def cases() -> list[tuple[str, str, str, dict[str, Any]]]:
    """``(base, noise, mode, options)`` of every entry."""
    out = []
    for base in ("torch", "numpy"):
        for noise in NOISES:
            out += [
                (base, noise, "certify", {"n0": 50, "n": 2000, "alpha": 0.001}),
                (base, noise, "certify", {"n0": 20, "n": 60, "alpha": 0.001}),
                (base, noise, "certify", {"n0": 50, "n": 20_000, "alpha": 0.001, "target_radius": [0.25, 0.5]}),
                (base, noise, "certify", {"n0": 50, "n": 20_000, "alpha": 0.001, "radius_tolerance": 0.05,
                                          "sequence": "bonferroni"}),
                (base, noise, "predict", {"n": 500, "alpha": 0.001}),
            ]
    return out


def compute(base_name: str, noise: str, mode: str, options: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """Every way of asking for the entry: single calls (by index, and as consecutive calls), and packed."""
    from rs_plugin import SmoothedClassifier
    from rs_plugin.datasets import digits_arrays

    x, _ = digits_arrays("test")
    x = x[:: 360 // NUM_EXAMPLES]
    base = torch_classifier() if base_name == "torch" else centroid_classifier()

    def smoothed() -> Any:
        return SmoothedClassifier(base, 10, NOISES[noise], noise=noise, seed=7, batch_size=batch_size)

    if mode == "predict":
        g = smoothed()
        single = [g.predict(x[i], index=i, **options) for i in range(len(x))]
        g = smoothed()
        calls = [g.predict(x[i], **options) for i in range(len(x))]
        packed = smoothed().predict_many(x, progress=False, **options).tolist()
        return {"single": single, "calls": calls, "packed": packed}
    g = smoothed()
    single = [_certificate(g.certify(x[i], index=i, **options)) for i in range(len(x))]
    g = smoothed()
    calls = [_certificate(g.certify(x[i], **options)) for i in range(len(x))]
    packed = [_certificate(c) for c in smoothed().certify_many(x, progress=False, **options)]
    return {"single": single, "calls": calls, "packed": packed}


def key(base: str, noise: str, mode: str, options: dict[str, Any]) -> str:
    return f"{base}/{noise}/{mode}/{json.dumps(options, sort_keys=True)}"


def main() -> int:
    import torch

    if not WEIGHTS.exists():
        from rs_plugin.adapters.checkpoints import save_checkpoint
        from rs_plugin.adapters.training import digits_model

        save_checkpoint(digits_model(0.25).cpu(), "digits_cnn", WEIGHTS)
    torch.set_num_threads(1)
    table = {key(*case): compute(*case, batch_size=256) for case in cases()}
    TABLE.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
