"""dgcnn: Chebyshev convolution on the learned channel graph, batching, EEG requirement."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import baseline_helpers
import pytest
import torch
from baseline_helpers import build, tiny_split, wesad_like

from affectkit import UserError
from tests.tolerances import rounding_tol


@pytest.fixture(scope="module")
def split():
    return tiny_split()


@pytest.fixture(scope="module")
def net(split):
    torch.manual_seed(0)
    return build("dgcnn", split.train, {"cheb_order": 3}).build_model().eval()


def test_adjacency_is_symmetric_non_negative_and_learned(net, split):
    a = net.adjacency()
    torch.testing.assert_close(a, a.T)
    assert (a >= 0).all()
    batch = {m: torch.from_numpy(x[:8]) for m, x in split.train.modalities.items()}
    net(batch).sum().backward()
    assert net.adjacency_weight.grad is not None
    assert net.adjacency_weight.grad.abs().sum() > 0
    net.zero_grad()


def test_chebconv_matches_the_dense_chebyshev_recursion(net, split):
    x = torch.from_numpy(split.train.modalities["eeg"][:5])  # [B, C, F]
    a = net.adjacency().detach()
    a = a - torch.diag(torch.diag(a))  # the graph has no self loops
    d = a.sum(1).clamp_min(1e-12).rsqrt()
    lap = -(d[:, None] * a * d[None, :])  # L̃ = 2L/λmax − I with λmax = 2
    t_prev, t_cur = x, lap @ x
    terms = [t_prev, t_cur]
    for _ in range(len(net.cheb.lins) - 2):
        t_prev, t_cur = t_cur, 2 * lap @ t_cur - t_prev
        terms.append(t_cur)
    dense = sum(lin(t) for lin, t in zip(net.cheb.lins, terms, strict=True)) + net.cheb.bias
    b, c = x.shape[:2]
    offsets = torch.arange(b) * c
    edges = (net.edges[:, None, :] + offsets[None, :, None]).reshape(2, -1)
    weight = a[net.edges[0], net.edges[1]].repeat(b)
    with torch.no_grad():
        sparse = net.cheb(x.reshape(b * c, -1), edges, weight).reshape(b, c, -1)
    # message passing sums the neighbours in another order than the dense products: the
    # degrees (18 terms) and scaling (2), two recursion steps over 18 channels, the 5-input
    # linear maps and the 3 orders, of values as large as the inputs' and outputs'
    scale = max(x.abs().max(), dense.detach().abs().max())
    tol = rounding_tol(18 + 2 + 2 * (18 + 2) + 5 + 3 + 1, scale=float(scale))
    torch.testing.assert_close(sparse, dense.detach(), atol=tol, rtol=0)


def test_batched_graphs_do_not_mix_samples(net, split):
    batch = {m: torch.from_numpy(x[:6]) for m, x in split.train.modalities.items()}
    with torch.no_grad():
        together = net(batch)
        alone = torch.cat([net({m: v[i : i + 1] for m, v in batch.items()}) for i in range(6)])
    # batch-size-dependent kernels round differently: the ChebConv chain (about 70 terms
    # as above), the head's fan-ins (1399 features, then 128) on logits of this size
    tol = rounding_tol(70 + 1399 + 128, scale=float(together.abs().max()))
    torch.testing.assert_close(together, alone, atol=tol, rtol=0)


def test_refuses_a_dataset_without_eeg():
    with pytest.raises(UserError, match="needs an EEG modality"):
        build("dgcnn", wesad_like())


PLUGIN = textwrap.dedent(
    """
    import numpy as np
    from affectkit import DatasetConfig, DatasetReader, hookimpl
    from baseline_helpers import wesad_like

    class NoEEGConfig(DatasetConfig):
        pass

    class NoEEG(DatasetReader):
        cacheable = False

        def load(self):
            return wesad_like(64)

    @hookimpl
    def affectkit_register(registry):
        registry.register("dataset", "no-eeg-test", NoEEG, NoEEGConfig)
    """
)

RUNNER = (
    "import sys, no_eeg_plugin; from affectkit.plugins import get_plugin_manager; "
    "get_plugin_manager().add_plugin(no_eeg_plugin, 'no-eeg-test'); "
    "from affectkit.cli import main; main(sys.argv[1:])"
)


def test_cli_exits_2_with_a_clear_message_without_eeg(tmp_path):
    (tmp_path / "no_eeg_plugin.py").write_text(PLUGIN)
    helpers = Path(baseline_helpers.__file__).parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(helpers)]),
        "AFFECTKIT_CACHE": str(tmp_path / "cache"),
    }
    args = ["bench", "--method", "dgcnn", "--dataset", "no-eeg-test", "--out", str(tmp_path / "o")]
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, env=env, timeout=120
    )
    message = " ".join(proc.stderr.split())  # rich wraps long lines
    assert proc.returncode == 2, proc.stderr
    assert "dgcnn needs an EEG modality 'eeg'" in message
    assert "Traceback" not in proc.stderr
