"""Shared test set-up: no test writes into the user's cache."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Point UST_CACHE at a temporary folder (checkpoints, benchmark scores)."""
    monkeypatch.setenv("UST_CACHE", str(tmp_path_factory.mktemp("ust_cache")))


@pytest.fixture
def one_thread():
    """Tiny models train faster (and as reproducibly) on one thread on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
