"""``python -m ust``: the command line (see :mod:`ust.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
