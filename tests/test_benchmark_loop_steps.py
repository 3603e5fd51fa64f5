"""benchmarks/loop_steps.py, each step of the noisy-evaluation loop timed inside a running loop: it reports every
step, the small ones also alone, and a ceiling below 1 that follows from the steps it printed."""

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


def test_a_loop_too_short_for_its_warm_up_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        loop_steps.main(["--batches", "20"])
    assert "--batches must be above 20" in capsys.readouterr().err
