from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _mpcl_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Own dataset cache per test; one torch thread (tiny models, shared CI cores)."""
    monkeypatch.setenv("AFFECTKIT_CACHE", str(tmp_path_factory.mktemp("mpcl_cache")))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def registry():
    from affectkit import get_registry

    return get_registry()
