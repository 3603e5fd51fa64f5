"""benchmarks/throughput.py at its smallest size: every run is timed and printed with its ratio to the limit, the
network with its noise drawn is timed at each candidate size, and the last line's ratios against it follow from the
printed rates."""

from __future__ import annotations

import re

import pytest
from benchmark_scripts import load

pytest.importorskip("torch")
pytest.importorskip("art")

throughput = load("throughput")


def test_every_run_and_the_ratios_against_the_network_with_its_noise(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throughput, "SWEEP", (8, 16, 32))
    throughput.compare(width=4, n0=16, n=256, predict_inputs=4, repeats=1, disturb=0.0, seconds=0.0)
    out = capsys.readouterr().out
    rates = {name.strip(): float(rate.replace(",", "")) for name, rate in
             re.findall(r"^  (\S[^\n]*?)\s+([\d,]+)\s+[\d.]+(?:\s+[\d.]+)?$", out, re.MULTILINE)}
    for size in (8, 16, 32):
        assert rates[f"forward pass, batch {size}"] > 0 and rates[f"forward pass + noise, batch {size}"] > 0
        assert rates[f"rs-plugin certify (batch {size})"] > 0
    for name in ("forward limit", "rs-plugin certify", "rs-plugin predict_many n=100", "ART certify (default batch)"):
        assert rates[name] > 0, out
    found = re.search(r"against the network with its noise drawn at batch (\d+) \(a plain torch loop, ([\d.]+) of "
                      r"the limit\): rs-plugin certify ([\d.]+), predict_many n=100 ([\d.]+)", out)
    assert found, out
    best, of_limit, certify, predict = int(found.group(1)), *map(float, found.groups()[1:])
    noisy = rates[f"forward pass + noise, batch {best}"]
    assert of_limit == pytest.approx(noisy / rates["forward limit"], abs=2e-3)  # one repetition: ratio of the rates
    assert certify == pytest.approx(rates["rs-plugin certify"] / noisy, abs=2e-3)
    assert predict == pytest.approx(rates["rs-plugin predict_many n=100"] / noisy, abs=2e-3)
