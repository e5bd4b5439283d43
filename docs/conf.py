"""Sphinx configuration: furo, MyST pages, autodoc/napoleon API reference, sphinx-gallery examples.

Build (warnings are errors, as in CI):  python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
# examples find the data where tests do, write figures into the build, and never into ~/.cache
os.environ.setdefault("GSEQ_DATA", str((ROOT.parent / "shared" / "data").resolve()))
os.environ.setdefault("GSEQ_EXAMPLES_OUT", str(DOCS / "_build" / "example-figures"))
os.environ.setdefault("GSEQ_CACHE", tempfile.mkdtemp(prefix="gseq-docs-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")

import gseq  # noqa: E402

project = "gseq"
author = "the gseq developers"
copyright = "2026, the gseq developers"
release = version = gseq.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_generated", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = f"gseq {release}"
html_static_path = ["_static"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Shapes", "notes_style")]
suppress_warnings = ["myst.xref_missing"]
nitpicky = False

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/[^_][^/]*\.py$",  # run every example, not only plot_*.py
    "ignore_pattern": r"_common\.py$",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "plot_gallery": "True",
}

#: subpackages whose ``__all__`` the API reference must cover
API_MODULES = ["gseq", "gseq.layers", "gseq.models", "gseq.tasks", "gseq.data", "gseq.ops", "gseq.train", "gseq.io",
               "gseq.config", "gseq.checks", "gseq.analysis", "gseq.plots"]


def _write_cli_reference(app) -> None:
    """``gseq <command> --help`` for every command, as a page include."""
    from gseq.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    parts = ["```text", parser.format_help().rstrip(), "```", ""]
    for name, p in sub.choices.items():
        parts += [f"## gseq {name}", "", "```text", p.format_help().rstrip(), "```", ""]
        nested = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
        for action in nested:
            for sub_name, sp in action.choices.items():
                parts += [f"### gseq {name} {sub_name}", "", "```text", sp.format_help().rstrip(), "```", ""]
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    (out / "cli.md").write_text("\n".join(parts))


def _check_public_names_documented(app) -> None:
    """Every name in a public ``__all__`` needs a docstring (classes, functions) or a ``#:`` comment."""
    from sphinx.pycode import ModuleAnalyzer
    from sphinx.util import logging

    log = logging.getLogger("gseq.docs")
    for modname in API_MODULES:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if obj is None:
                log.warning(f"{modname}.__all__ names {name!r}, which does not exist")
                continue
            if inspect.ismodule(obj) or name == "__version__":
                continue
            if inspect.isclass(obj) or callable(obj):
                if not (obj.__doc__ or "").strip():
                    log.warning(f"{modname}.{name} has no docstring; every public name must be documented")
                continue
            # a constant: documented by a '#:' comment where it is defined
            documented = False
            for source in {modname, *(m for m in sys.modules if m.startswith(modname + "."))}:
                try:
                    docs = ModuleAnalyzer.for_module(source).find_attr_docs()
                except Exception:  # a module without source
                    continue
                if any(key[1] == name for key in docs):
                    documented = True
                    break
            if not documented:
                log.warning(f"{modname}.{name} has no '#:' doc comment; every public name must be documented")


def setup(app):
    app.connect("builder-inited", _write_cli_reference)
    app.connect("builder-inited", _check_public_names_documented)
