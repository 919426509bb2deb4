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


def test_dense_convolution_equals_torch_geometric_chebconv(net, split):
    # the sparse reference: ChebConv's message passing over the B graphs of the batch stacked
    # as one disconnected graph (how dgcnn computed it before the dense convolution)
    x = torch.from_numpy(split.train.modalities["eeg"][:5])  # [B, C, F]
    b, c = x.shape[:2]
    src, dst = torch.meshgrid(torch.arange(c), torch.arange(c), indexing="ij")
    off = src != dst
    edges = torch.stack([src[off], dst[off]])
    offsets = torch.arange(b) * c
    batch_edges = (edges[:, None, :] + offsets[None, :, None]).reshape(2, -1)
    with torch.no_grad():
        a = net.adjacency()
        weight = a[edges[0], edges[1]].repeat(b)
        sparse = net.cheb(x.reshape(b * c, -1), batch_edges, weight).reshape(b, c, -1)
        dense = net.graph_conv(x)
        plain = net.cheb.lins[0](x) + net.cheb.bias  # order 1: no neighbour mixing
    # message passing sums the neighbours in another order than the dense products: the
    # degrees (18 terms) and scaling (2), two recursion steps over 18 channels, the 5-input
    # linear maps and the 3 orders, of values as large as the inputs' and outputs'
    scale = max(x.abs().max(), dense.abs().max())
    tol = rounding_tol(18 + 2 + 2 * (18 + 2) + 5 + 3 + 1, scale=float(scale))
    torch.testing.assert_close(dense, sparse, atol=tol, rtol=0)
    assert float((dense - plain).abs().max()) > 100 * tol


def test_adjacency_has_no_self_loops(net):
    torch.testing.assert_close(torch.diag(net.adjacency()), torch.zeros(net.channels))


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


def test_a_group_run_skips_dgcnn_without_eeg(tmp_path):
    """`--method all/baselines` on a dataset without EEG: dgcnn is left out with its reason
    (recorded in results.json), the other methods run; named explicitly it still refuses."""
    from affectkit.bench import resolve_configs, run_bench

    cfgs = resolve_configs(["prior", "dgcnn"], overrides=["protocol.folds=2"])
    results, _ = run_bench(cfgs, run_dir=tmp_path / "o", data=wesad_like(64), skip_unfit=True)
    assert "needs an EEG modality" in results["skipped_methods"]["dgcnn"]
    assert list(results["methods"]) == ["prior"] and results["methods"]["prior"]["complete"]
    with pytest.raises(UserError, match="needs an EEG modality"):
        run_bench(cfgs, run_dir=tmp_path / "p", data=wesad_like(64))
