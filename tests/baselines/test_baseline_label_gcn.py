"""label-gcn: the co-occurrence graph comes from the training labels passed to fit only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from affectkit_baselines.label_gcn import cooccurrence_adjacency
from baseline_helpers import build, tiny_split

from tests.tolerances import rounding_tol

FAST = {"epochs": 2, "patience": 0}


@pytest.fixture(scope="module")
def split():
    return tiny_split()


def test_cooccurrence_adjacency_by_hand():
    # K = 4, "present" = share > 1/4. Emotions 0 and 1 always appear together, 2 appears
    # alone once and with 0 once, 3 never.
    y = np.array(
        [
            [0.4, 0.4, 0.1, 0.1],
            [0.4, 0.4, 0.1, 0.1],
            [0.3, 0.3, 0.3, 0.1],
            [0.1, 0.1, 0.7, 0.1],
        ]
    )
    a = cooccurrence_adjacency(y, threshold=0.4, reweight=0.2)
    # Pr(1|0) = 1, Pr(2|0) = 1/3 < τ; Pr(0|1) = 1, Pr(2|1) = 1/3; Pr(0|2) = Pr(1|2) = 1/2 ≥ τ
    expected = np.array(
        [
            [0.8, 0.2, 0.0, 0.0],
            [0.2, 0.8, 0.0, 0.0],
            [0.1, 0.1, 0.8, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    # computed in float64 and stored as float32: one rounding of values ≤ 1
    np.testing.assert_allclose(a, expected, rtol=0, atol=rounding_tol(1))


def test_graph_is_built_from_the_fit_labels_only(split):
    expected = cooccurrence_adjacency(split.train.targets)
    method = build("label-gcn", split.train, **FAST)
    method.fit(split.train, split.valid)
    # the same function of the same labels: exact
    np.testing.assert_array_equal(method.adjacency.numpy(), expected)
    np.testing.assert_array_equal(method.model.adjacency.numpy(), expected)
    method.predict(split.test)  # predicting never touches the graph
    np.testing.assert_array_equal(method.model.adjacency.numpy(), expected)

    # other validation labels: same graph; other training labels: another graph
    other_valid = build("label-gcn", split.train, **FAST)
    other_valid.fit(split.train, split.test)
    np.testing.assert_array_equal(other_valid.adjacency.numpy(), expected)
    flipped = split.train.subset(np.arange(len(split.train)))
    flipped.targets = np.ascontiguousarray(flipped.targets[:, ::-1])
    other_train = build("label-gcn", split.train, **FAST)
    other_train.fit(flipped, split.valid)
    assert not np.allclose(other_train.adjacency.numpy(), expected)


def test_checkpoint_restores_the_graph(split):
    method = build("label-gcn", split.train, **FAST)
    method.fit(split.train, split.valid)
    restored = build("label-gcn", split.train, **FAST)
    restored.load_state_dict(method.state_dict())
    np.testing.assert_array_equal(restored.adjacency.numpy(), method.adjacency.numpy())
    # bit for bit: the same weights and graph through the same operations in this process
    np.testing.assert_array_equal(restored.predict(split.test), method.predict(split.test))


def test_classifiers_propagate_along_the_rows_of_the_graph(split):
    # A non-symmetric graph: emotion 0 listens to 1, nobody listens to 0.
    k = split.train.spec.num_emotions
    adj = np.eye(k, dtype=np.float32)
    adj[0, 0], adj[0, 1] = 0.7, 0.3
    method = build("label-gcn", split.train, **FAST)
    method.adjacency = torch.from_numpy(adj)
    net = method.build_model().eval()
    a = torch.from_numpy(adj)
    with torch.no_grad():
        h = F.leaky_relu(a @ net.gcn1.lin(net.label_embedding) + net.gcn1.bias, 0.2)
        expected = a @ net.gcn2.lin(h) + net.gcn2.bias
        # the GCN layers' own propagation order: the 64-input and 128-input linear maps and
        # two 10-term neighbourhood sums (plus the normalisation's few roundings)
        tol = rounding_tol(64 + 10 + 128 + 10 + 6, scale=float(expected.abs().max()) + 1.0)
        torch.testing.assert_close(net.classifiers(), expected, atol=tol, rtol=0)


def test_dense_propagation_equals_torch_geometric_gcnconv(split):
    # rows that do not sum to 1 (and an isolated emotion) exercise the normalisation
    # D^{-1/2} A' D^{-1/2}; the sparse reference is GCNConv's message passing, the way
    # label-gcn computed it before the dense propagation
    k = split.train.spec.num_emotions
    adj = torch.rand(k, k, generator=torch.Generator().manual_seed(0))
    adj[3] = 0.0
    method = build("label-gcn", split.train, **FAST)
    method.adjacency = adj
    net = method.build_model().eval()
    dst, src = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    edges = torch.stack([src.reshape(-1), dst.reshape(-1)])  # message j -> i carries A'_ij
    w = adj[edges[1], edges[0]]
    with torch.no_grad():
        h = F.leaky_relu(net.gcn1(net.label_embedding, edges, w), 0.2)
        sparse = net.gcn2(h, edges, w)
        dense = net.classifiers()
    assert torch.equal(dense[3], net.gcn2.bias)  # no neighbours, no in-edges: the bias alone
    # the 64- and 128-input linear maps, two 10-term neighbourhood sums and the degrees
    tol = rounding_tol(64 + 10 + 128 + 10 + 10 + 6, scale=float(sparse.abs().max()) + 1.0)
    torch.testing.assert_close(dense, sparse, atol=tol, rtol=0)
