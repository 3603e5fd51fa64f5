"""The Python blocks of the README and of the documentation pages (docs/**/*.md) run as written.

The blocks of one page run in order in one namespace, like a reader's session, in a temporary working directory;
plugins a page registers are unregistered afterwards. A block preceded by the line ``<!-- not-run -->`` (an HTML
comment, invisible on GitHub and in the Sphinx site) is a skeleton with elided bodies (``...``) and is not run:

    <!-- not-run -->
    ```python
    def load_ddpm(source): ...
    ```
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
NOT_RUN = "<!-- not-run -->"
MIN_RUNNABLE = 25  # the README's 3 and the documentation's 22, when this test was written
BLOCK = re.compile(r"^(?P<marker><!-- not-run -->\n)?```python\n(?P<code>.*?)^```[ \t]*$", re.S | re.M)


def pages() -> list[Path]:
    return [README, *sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts)]


def blocks(page: Path) -> list[tuple[int, str, bool]]:
    """``(line, code, runnable)`` for every ```python block of ``page``, in order (``line``: of its first code line)."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        found.append((line, match.group("code"), match.group("marker") is None))
    return found


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_python_block_is_run_or_marked_as_a_skeleton() -> None:
    runnable = 0
    for page in pages():
        text = page.read_text(encoding="utf-8")
        assert text.count("```python") == len(blocks(page)), f"{name(page)}: a ```python block that does not close"
        assert text.count(NOT_RUN) == sum(not run for _, _, run in blocks(page)), (
            f"{name(page)}: {NOT_RUN} must be the line just before a ```python block"
        )
        for line, code, run in blocks(page):
            if not run:
                assert "..." in code, f"{name(page)}:{line}: a not-run block must be a skeleton with elided bodies"
            compile(code, f"{name(page)}:{line}", "exec")  # every block is valid Python, run or not
        runnable += sum(run for _, _, run in blocks(page))
    assert sum(run for _, _, run in blocks(README)) >= 3
    assert runnable >= MIN_RUNNABLE


def test_readme_links_point_to_files() -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8")):
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def check_first_certificate(namespace: dict) -> None:
    """The linear example's certificate is what its comments say (the true l2 distance to the boundary: 0.262)."""
    assert namespace["cert"].prediction == 1 and 0.25 < namespace["cert"].radius <= 0.262


# Checks after a block: (page, index of the runnable block) -> check of the namespace.
CHECKS = {
    ("README.md", 0): check_first_certificate,
    ("docs/quickstart.md", 0): check_first_certificate,
    ("docs/guide/smoothed-classifier.md", 0): check_first_certificate,
    # the sequential example: the boundary is at 0.262, so radius 0.5 is never certified
    ("docs/guide/smoothed-classifier.md", 4): lambda namespace: not namespace["cert"].radius >= 0.5,
}


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a page that trains a denoiser took 48 s quiet, 733 s with three jobs on two cores
@pytest.mark.parametrize("page", [p for p in pages() if any(run for _, _, run in blocks(p))], ids=name)
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("torch", "art", "torchattacks", "sklearn"):
        pytest.importorskip(module)
    from rs_plugin import get_plugin_manager

    monkeypatch.chdir(tmp_path)  # files a page writes (checkpoints, rows) go here
    manager = get_plugin_manager()
    registered = {plugin_name for plugin_name, _ in manager.list_name_plugin()}
    namespace: dict = {"__name__": "__main__"}
    try:
        runnable = [(line, code) for line, code, run in blocks(page) if run]
        for number, (line, code) in enumerate(runnable):
            exec(compile(code, f"{name(page)}:{line}", "exec"), namespace)
            check = CHECKS.get((name(page), number))
            if check is not None:
                assert check(namespace) is not False, f"{name(page)}:{line}: not what the block's comments say"
    finally:
        for plugin_name, _ in manager.list_name_plugin():
            if plugin_name not in registered:
                manager.unregister(name=plugin_name)
