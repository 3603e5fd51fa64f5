"""The README's Python examples run as written (in order, sharing one namespace, like a reader's session)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_examples_run() -> None:
    pytest.importorskip("art")
    pytest.importorskip("torchattacks")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    runnable = [block for block in blocks if "): ..." not in block]  # the plugin skeleton elides its bodies
    assert len(runnable) >= 4
    namespace: dict = {}
    for number, block in enumerate(runnable):
        exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        if number == 0:  # the first example's certificate is what its comments say
            assert namespace["cert"].prediction == 1 and 0.25 < namespace["cert"].radius <= 0.262
    assert not namespace["cert"].radius >= 0.5  # the sequential example: the boundary is at 0.262
