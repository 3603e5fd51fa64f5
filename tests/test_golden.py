"""Certificates do not change by one bit: the fixed-seed table of ``tests/golden_certificates.py``, taken before
the core was reshaped, recomputed from the code as it is (single calls by index, consecutive calls, packed calls)."""

from __future__ import annotations

import json

import pytest

golden = pytest.importorskip("golden_certificates")
pytest.importorskip("torch")
pytest.importorskip("sklearn")

TABLE = json.loads(golden.TABLE.read_text())
CASES = golden.cases()


def _marks(case: tuple) -> list:
    """The sequential entries draw up to 20,000 samples per input: the slow suite recomputes them."""
    options = case[3]
    return [pytest.mark.slow] if "target_radius" in options or "radius_tolerance" in options else []


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=golden.key(*case), marks=_marks(case)) for case in CASES]
)
def test_certificates_equal_the_table_taken_before_the_redesign(case: tuple) -> None:
    expected = TABLE[golden.key(*case)]
    assert golden.compute(*case, batch_size=256) == expected


def test_the_table_covers_every_noise_both_backends_and_every_mode() -> None:
    assert len(TABLE) == len(CASES) == 30
    abstained = [c for entry in TABLE.values() for c in entry["packed"] if isinstance(c, dict) and c["prediction"] < 0]
    assert abstained  # an abstention is pinned too
