"""Sphinx configuration of the rs-plugin documentation (MyST markdown pages, API reference by autodoc).

Build with warnings as errors, from the repository root:

    python -m sphinx -W --keep-going -b html docs docs/_build/html

autodoc imports the installed package (``pip install -e '.[all,dev]'``), so every module it documents must import.
"""

from __future__ import annotations

import rs_plugin

project = "rs-plugin"
author = "rs-plugin contributors"
copyright = "rs-plugin contributors"
release = version = rs_plugin.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: $...$ and $$...$$ maths, and anchors for headings down to level 3 (links like page.md#a-heading).
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# autodoc: document what each module defines, in source order, with signatures from the code.
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_mock_imports: list[str] = []  # every optional framework is installed where the docs are built

nitpicky = False
suppress_warnings: list[str] = []

html_theme = "alabaster"
html_title = f"rs-plugin {release}"
html_theme_options = {
    "description": "Randomized smoothing (Cohen et al. 2019) as a plugin for ART and torchattacks",
    "fixed_sidebar": True,
}
