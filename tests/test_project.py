"""The project's own promises: dependencies in sync, README commands, CI entry point."""

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _requirement(text: str) -> tuple[str, str]:
    """('scikit-learn', '>=1.3') from 'scikit_learn >= 1.3'."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", text)
    assert match, f"cannot parse requirement {text!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def test_environment_and_pyproject_list_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    from_pyproject = {_requirement(d) for d in project["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    from_env = set()
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-e") or _requirement(item)[0] in {"python", "pip"}:
                continue
            from_env.add(_requirement(item))
    assert from_env == from_pyproject, (
        f"only in environment.yml: {sorted(from_env - from_pyproject)}; "
        f"only in pyproject.toml: {sorted(from_pyproject - from_env)}")
    assert any(isinstance(d, dict) and "-e ." in d["pip"] for d in env["dependencies"]), \
        "environment.yml must install the package itself (pip: -e .)"


def test_readme_gives_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call the README's test command"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: env$", makefile, re.M) and re.search(r"^book: env$", makefile, re.M)
    assert "-W -n --keep-going" in makefile


def test_book_configuration_at_top_level():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["only_build_toc_files"] is True
    assert (ROOT / "book" / "_toc.yml").is_file()


def test_code_passes_the_linter():
    """ruff with the settings of pyproject.toml (pycodestyle and pyflakes, lines of at most 120 characters)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", str(ROOT)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, f"ruff found problems (fix them, `make lint` lists them):\n{done.stdout}{done.stderr}"


CODE_BOX = 76     # characters a rendered code cell shows at a 1280 px window before it scrolls sideways


def _code_lines(markdown: str):
    """(line number, line) of the Python in every code cell, without the cell's option lines."""
    state = "prose"                         # prose -> options -> (yaml) -> code -> prose
    for number, line in enumerate(markdown.splitlines(), 1):
        if state == "prose":
            state = "options" if line.startswith("```{code-cell}") else "prose"
        elif line.startswith("```"):
            state = "prose"
        elif state == "yaml":
            state = "options" if line.strip() == "---" else "yaml"
        elif state == "options" and line.strip() == "---":
            state = "yaml"
        elif state == "options" and line.startswith(":"):
            pass
        else:
            state = "code"
            yield number, line


def test_code_lines_helper_skips_cell_options():
    text = ("```{code-cell} ipython3\n:tags: [remove-input]\n" + "x = 1\n```\n"
            "```{code-cell} ipython3\n---\ntags: [" + "y" * 90 + "]\n---\nz = 2\n```\nprose " + "w" * 90)
    assert list(_code_lines(text)) == [(3, "x = 1"), (9, "z = 2")]


@pytest.mark.parametrize("chapter", sorted(p.relative_to(ROOT / "book").as_posix()
                                           for p in (ROOT / "book").rglob("*.md")))
def test_book_code_lines_fit_the_code_box(chapter):
    """No code line scrolls sideways in the rendered book (the box holds 76 characters at 1280 px)."""
    text = (ROOT / "book" / chapter).read_text()
    too_long = [f"line {n}: {len(line)} characters" for n, line in _code_lines(text) if len(line) > CODE_BOX]
    assert not too_long, f"{chapter}: code lines longer than {CODE_BOX} characters (wrap them):\n" + "\n".join(too_long)
