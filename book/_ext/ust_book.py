"""Sphinx glue for the ust book: MathJax served offline, every notebook page downloadable as .ipynb.

Loaded from _config.yml (``sphinx: local_extensions``). Two jobs:

* **Offline math.** When ``book/_mathjax/mathjax/tex-chtml.js`` exists
  (``make mathjax`` puts it there; ``make book`` does so first), the folder
  is added to ``html_static_path`` and ``mathjax_path`` points at
  ``_static/mathjax/tex-chtml.js``, so the HTML needs no CDN. Without it the
  build warns (an error under ``-W``) and keeps Sphinx's CDN default.
* **.ipynb downloads.** Jupyter Book 1's download button offers the page's
  source, which for the chapters is MyST Markdown (``.md``); the theme adds
  a ``.ipynb`` entry only when a launch service (Binder, Colab, ...) is
  configured. For every page that MyST-NB executed, this copies the
  executed notebook (outputs included) from ``_build/jupyter_execute`` to
  ``_sources/<page>.ipynb`` and sets the theme's ``ipynb_source``, so the
  download menu shows ``.ipynb`` next to ``.md`` and ``.pdf``.

It also drops repeated inline scripts from each page: with Sphinx 7,
sphinx-togglebutton and sphinx-thebe (loaded by Jupyter Book) register
their inline configuration twice, and the second ``const THEBE_JS_URL``
is a JavaScript ``SyntaxError`` in the reader's console.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

MATHJAX_FOLDER = "_mathjax"
MATHJAX_SCRIPT = "mathjax/tex-chtml.js"


def _offline_mathjax(app, config) -> None:
    local = Path(app.srcdir) / MATHJAX_FOLDER / MATHJAX_SCRIPT
    if not local.is_file():
        logger.warning(f"MathJax is not in {local.parent}: run `make mathjax` (or `make book`) once with network "
                       "access; until then the pages load MathJax from a CDN and show raw TeX offline.")
        return
    if MATHJAX_FOLDER not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, MATHJAX_FOLDER]
    config.mathjax_path = MATHJAX_SCRIPT


def _notebook_download(app, pagename, templatename, context, doctree) -> None:
    if app.builder.format != "html" or not context.get("sourcename", "").endswith((".md", ".md.txt")):
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.is_file():
        return  # not a notebook page (e.g. the status page)
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def _drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = (str(script.filename or ""), tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if len(unique) < len(scripts):
        context["script_files"] = unique


def setup(app):
    app.connect("config-inited", _offline_mathjax)
    # before sphinx-book-theme's header buttons (priority 501) read ipynb_source
    app.connect("html-page-context", _notebook_download, priority=500)
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
