"""Put MathJax 3 into book/_mathjax/mathjax/, so that the book renders math offline.

Run by ``make book`` (target ``mathjax``) when the folder is missing; needs
the network once. MathJax 3.2.2 comes from PyPI with pip, the client every
set-up of this project already has: the wheel of ``sphinx-mathjax-offline``
0.0.2 carries MathJax's ``es5`` files. The wheel is pinned by its SHA-256
(``pip download --require-hashes``) and only what the book uses is
unpacked (about 3 MB): the combined ``tex-chtml.js`` component, the TeX
extensions it loads on demand, the CHTML fonts, and the menu and
accessibility components. Nothing of it is installed into the environment,
and nothing is committed (``book/_mathjax/`` is in .gitignore).

The book's Sphinx glue (book/_ext/ust_book.py) serves the files from
``_static/mathjax/`` and points ``mathjax_path`` at ``tex-chtml.js``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "sphinx-mathjax-offline==0.0.2"
SHA256 = "206418155b2ff2f57496fb8501fdccae3da978e53031ff296c73729ba16062c4"
PREFIX = "sphinx-mathjax-offline/static/mathjax/"
#: What the book needs, relative to MathJax's es5 folder.
KEEP = ("tex-chtml.js", "input/tex/extensions/", "output/chtml/fonts/woff-v2/", "ui/", "a11y/")
TARGET = Path(__file__).resolve().parents[1] / "_mathjax" / "mathjax"


def main() -> int:
    target = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else TARGET
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{WHEEL} --hash=sha256:{SHA256}\n")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--require-hashes", "-r", str(requirements), "--dest", tmp]
        print("fetching MathJax 3.2.2:", " ".join(command[2:5]), WHEEL, flush=True)
        if subprocess.call(command) != 0:
            print("Could not download MathJax; the book will load it from a CDN instead (needs internet when "
                  "reading). Retry with `make mathjax` when online.", file=sys.stderr)
            return 1
        wheel = next(Path(tmp).glob("*.whl"))
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        count = 0
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                rel = name[len(PREFIX):] if name.startswith(PREFIX) else None
                if not rel or name.endswith("/") or not rel.startswith(KEEP):
                    continue
                out = staging / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.read(name))
                count += 1
        if not (staging / "tex-chtml.js").is_file():
            print(f"{wheel.name} holds no tex-chtml.js; MathJax not installed.", file=sys.stderr)
            return 1
        (staging / "SOURCE.txt").write_text(f"MathJax 3.2.2 (Apache-2.0), es5 files from the PyPI wheel {WHEEL} "
                                            f"(sha256 {SHA256}).\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"MathJax: {count} files, {size / 1e6:.1f} MB in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
