"""A small checkpoint trained on labelled simulated E4 sessions, shared by the module."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_e4 import write_session

LABELS = "start_s,end_s,calm,aroused\n" + "".join(
    f"{a},{a + 120},{4 if i % 2 == 0 else 1},{1 if i % 2 == 0 else 4}\n"
    for i, a in enumerate(range(0, 600, 120))
)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    from affectkit.bench import resolve_configs
    from affectkit.checkpoint import train

    root = tmp_path_factory.mktemp("e4train")
    for i, start in enumerate((1495437325, 1495447325)):
        folder = write_session(root / "data" / f"{start}_A0{i}", 600, seed=i, start=start)
        (folder / "labels.csv").write_text(LABELS)
    cfg = resolve_configs(
        ["mlp"],
        overrides=["dataset.name=e4", f"dataset.data_dir={root / 'data'}", "train.epochs=3"],
    )[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(cfg, root / "ck", use_cache=False)
    finally:
        torch.set_num_threads(threads)
