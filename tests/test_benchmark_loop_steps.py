"""benchmarks/loop_steps.py, each step of the noisy-evaluation loop timed inside a running loop: it reports every
step, the small ones also alone, and a ceiling below 1 that follows from the steps it printed; then the whole loops
(the plain steps, rs-plugin's counts and CERTIFY) side by side, each line consistent with itself; and the Gaussian
samplers at hand, each with the ceiling it would leave."""

from __future__ import annotations

import re

import pytest
from benchmark_scripts import load

pytest.importorskip("torch")

loop_steps = load("loop_steps")


def test_every_step_is_timed_and_the_ceiling_follows_from_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert loop_steps.main(["--batch", "8", "--batches", "30"]) == 0
    out = capsys.readouterr().out
    times = {step: float(re.search(rf"  {step}\s+([\d.]+) us", out).group(1)) for step in loop_steps.STEPS}
    assert all(t > 0 for t in times.values())
    steps = sum(times.values()) - times["network"]
    ceiling = float(re.search(r"ceiling network / \(network \+ steps\) = ([\d.]+)", out).group(1))
    assert ceiling == pytest.approx(times["network"] / (times["network"] + steps), abs=2e-3)
    assert ceiling < 1
    loops = {name: re.search(rf"  {name}\s+([\d.]+) us\s+(-?[\d.]+) us\s+([\d.]+)", out) for name in loop_steps.LOOPS}
    assert all(loops.values()), out
    plain = float(loops["plain steps"].group(1))
    for match in loops.values():  # each loop's extra time and ratio follow from its time per batch and the plain one
        per_batch, extra, ratio = map(float, match.groups())
        assert extra == pytest.approx(per_batch - plain, abs=0.11)
        assert ratio == pytest.approx(plain / per_batch, abs=2e-3)


def test_the_linear_model_and_no_whole_loops_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert loop_steps.main(["--linear", "--batch", "8", "--batches", "30", "--rounds", "0"]) == 0
    out = capsys.readouterr().out
    assert "a linear model, batch 8" in out and "whole loop" not in out


def test_a_loop_too_short_for_its_warm_up_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        loop_steps.main(["--batches", "20"])
    assert "--batches must be above 20" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        loop_steps.main(["--rounds", "-1"])
    assert "--rounds must be 0 or more" in capsys.readouterr().err


def test_every_sampler_is_timed_with_the_ceiling_it_would_leave(capsys: pytest.CaptureFixture[str]) -> None:
    assert loop_steps.main(["--batch", "8", "--batches", "30", "--rounds", "0"]) == 0
    out = capsys.readouterr().out
    network = float(re.search(r"  network\s+([\d.]+) us", out).group(1))
    values = int(re.search(r"\(alone, ([\d,]+) float32 values", out).group(1).replace(",", ""))
    assert values == 8 * 28 * 28
    for name in loop_steps.SAMPLERS:
        match = re.search(rf"  {name}\s+([\d.]+) ns\s+([\d.]+)", out)
        assert match, out
        per_value, ceiling = map(float, match.groups())
        assert per_value > 0
        assert ceiling == pytest.approx(network / (network + per_value * values / 1000), abs=2e-3)
