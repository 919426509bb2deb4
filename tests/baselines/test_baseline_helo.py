"""helo: stream selection on smaller datasets, DropKey, learnable label correlation, loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from affectkit_baselines.helo import DropKeyCrossAttention
from baseline_helpers import assert_distributions, build, tiny_split, wesad_like

from affectkit import UserError
from tests.tolerances import rounding_tol

FAST = {"epochs": 2, "patience": 0}


@pytest.fixture(scope="module")
def split():
    return tiny_split()


def _batch(data, n=None):
    n = n or len(data)
    out = {m: torch.from_numpy(x[:n]) for m, x in data.modalities.items()}
    out["target"] = torch.from_numpy(data.targets[:n])
    return out


def test_dmer_streams_and_token_counts(split):
    method = build("helo", split.train, **FAST)
    assert (method.query, method.keys, method.behavioral) == ("eeg", ["gsr", "ppg"], ["behavioral"])
    net = method.build_model().eval()
    batch = _batch(split.train, 5)
    assert net.physiological(batch).shape == (5, 36, 128)  # 18 EEG queries x (gsr, ppg)
    assert net.to_emotions.in_features == 72  # 36 transported physiological + 36 behavioral
    assert net(batch).shape == (5, 10)


def test_wesad_rule_ppg_queries_gsr_and_temp_acc_is_behavioral():
    data = wesad_like(48)
    method = build("helo", data, **FAST)
    assert (method.query, method.keys, method.behavioral) == ("ppg", ["gsr", "temp"], ["acc"])
    method.fit(data)
    assert_distributions(method.predict(data), 48, 10)


def test_without_behavioral_stream_ot_is_dropped():
    data = wesad_like(48, behavioral=False)
    method = build("helo", data, **FAST)
    method.fit(data)
    assert not hasattr(method.model, "behavior_tokenizer")
    assert method.model.to_emotions.in_features == 36  # 18 ppg queries x (gsr, temp)
    assert_distributions(method.predict(data), 48, 10)


def test_unknown_query_is_a_user_error():
    with pytest.raises(UserError, match="query modality 'eeg'"):
        build("helo", wesad_like(), {"query": "eeg"})


def test_dropkey_masks_only_while_training():
    torch.manual_seed(0)
    attn = DropKeyCrossAttention(16, 4, drop_key=0.5)
    q, s = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    attn.train()
    assert not torch.allclose(attn(q, s), attn(q, s))
    attn.eval()
    torch.testing.assert_close(attn(q, s), attn(q, s))
    attn.drop_key = 0.0
    attn.train()
    torch.testing.assert_close(attn(q, s), attn(q, s))


def test_label_embeddings_are_learned_parameters_not_redrawn(split):
    method = build("helo", split.train, **FAST)
    torch.manual_seed(method.seed)
    initial = method.build_model().label_attention.label_embedding.detach().clone()
    method.fit(split.train, split.valid)
    net = method.model
    names = {n for n, _ in net.named_parameters()}
    assert "label_attention.label_embedding" in names
    before = net.label_attention.label_embedding.detach().clone()
    batch = _batch(split.test, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(batch), net(batch))
    torch.testing.assert_close(net.label_attention.label_embedding.detach(), before)
    assert not torch.allclose(before, initial)  # training moved them
    r = net.label_attention.correlation().detach()
    torch.testing.assert_close(r, r.T)
    torch.testing.assert_close(torch.diag(r), torch.ones(10))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_is_kl_plus_correlation_mse(split, reduction):
    method = build("helo", split.train, {"kl_reduction": reduction, "corr_weight": 2.0}, **FAST)
    method.fit(split.train)
    batch = _batch(split.train, 16)
    with torch.no_grad():
        y = batch["target"]
        kl = F.kl_div(F.log_softmax(method.model(batch), -1), y, reduction="sum")
        kl = kl / 16 if reduction == "mean" else kl
        yn = y / y.norm(dim=-1, keepdim=True)
        truth = torch.einsum("bi,bj->bij", yn, yn)
        sq = (method.model.label_attention.correlation() - truth) ** 2
        mse = sq.mean()
        # F.kl_div against xlogy: log-softmax (10 terms) and the 16·10-term KL sum, whose
        # terms are at most |y log y| + |y log p|; the MSE is a 16·10·10-term mean
        logp = F.log_softmax(method.model(batch), -1)
        kl_terms = (torch.special.xlogy(y, y).abs() + (y * logp).abs()).sum()
        kl_terms = kl_terms / 16 if reduction == "mean" else kl_terms
        tol = rounding_tol(10 + 2 + 160, float(kl_terms))
        tol += 2.0 * rounding_tol(1600, float(sq.max()))
        got, want = float(method.loss(batch)), float(kl + 2.0 * mse)
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
