"""Shared test set-up: no test writes into the user's cache."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Point UST_CACHE at a temporary folder (checkpoints, benchmark scores)."""
    monkeypatch.setenv("UST_CACHE", str(tmp_path_factory.mktemp("ust_cache")))
