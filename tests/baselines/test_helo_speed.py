"""The faster helo (issue 18) computes what helo computed before: same outputs, same
gradients, same seeded dropout/DropKey masks, same training trajectory, up to rounding.

The oracle is ``benchmarks/helo_frozen.py``, the old forward and loss kept as a record.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from affectkit_baselines.helo import DropKeyCrossAttention
from baseline_helpers import build, wesad_like

from affectkit import EmotionDataset
from benchmarks import helo_frozen as frozen
from benchmarks.helo_reference import build_helo, random_dmer
from tests.tolerances import plan_rtol, rounding_tol, training_rtol

# The forward's longest chain of accumulated float32 terms on DMER sizes (the 768-input
# projection, attention over 72 tokens of 128, the 72-token map, the label attention and
# the 1280 -> 128 -> 128 -> 10 head; as in test_helo_reference): about 3200 terms. The OT
# plan, solved from token values that differ by that rounding, moves by plan_rtol.
FORWARD_OPS = 3200
BACKWARD_OPS = 2 * FORWARD_OPS + 128  # back through the same chain, plus the batch summed


def _rel() -> float:
    return plan_rtol(36, 36) + rounding_tol(BACKWARD_OPS)


def _odd_layout() -> tuple[Any, EmotionDataset]:
    """Key/value sets of unequal token counts (a [C, F] key modality): the per-set path."""
    rng = np.random.default_rng(0)
    n = 24
    mods = {
        "eeg": rng.normal(size=(n, 6, 5)),
        "gsr": rng.normal(size=(n, 4, 3)),  # 4 channel tokens
        "ppg": rng.normal(size=(n, 27)),  # vector_tokens tokens
        "video": rng.normal(size=(n, 20)),
    }
    groups = {"eeg": "physiological", "gsr": "physiological", "ppg": "physiological"}
    data = EmotionDataset(
        name="odd",
        modalities=mods,
        targets=rng.dirichlet(np.ones(10), n),
        emotions=[f"e{i}" for i in range(10)],
        subject=np.repeat(["1", "2"], n // 2),
        trial=np.arange(n) // 4,
        window=np.arange(n) % 4,
        groups={**groups, "video": "behavioral"},
    )
    return build("helo", data, {"dim": 32, "vector_tokens": 5, "behavioral_tokens": 9}), data


def _layouts():
    dmer = build_helo("cpu")
    wesad = wesad_like(24)
    odd, odd_data = _odd_layout()
    return {
        "dmer": (dmer, random_dmer(8, seed=3)),
        "wesad": (build("helo", wesad), _batch(wesad)),
        "unequal-keys": (odd, _batch(odd_data)),
    }


def _batch(data) -> dict[str, torch.Tensor]:
    out = {m: torch.from_numpy(x[:8]).float() for m, x in data.modalities.items()}
    out["target"] = torch.from_numpy(data.targets[:8]).float()
    return out


def _net(method):
    if method.model is None:
        torch.manual_seed(0)
        method.model = method.build_model()
    return method.model


@pytest.fixture(scope="module")
def layouts():
    return _layouts()


@pytest.mark.parametrize("layout", ["dmer", "wesad", "unequal-keys"])
def test_eval_forward_equals_the_old_forward(layouts, layout):
    method, batch = layouts[layout]
    net = _net(method).eval()
    x = {k: v for k, v in batch.items() if k != "target"}
    with torch.no_grad():
        new, old = net(x), frozen.forward(net, x)
    torch.testing.assert_close(new, old, rtol=0, atol=_rel() * float(old.abs().max()))


@pytest.mark.parametrize("layout", ["dmer", "wesad", "unequal-keys"])
def test_training_loss_and_gradients_equal_the_old_ones(layouts, layout):
    # train mode: dropout and DropKey draw their masks; with one seed both sides must draw
    # the same masks in the same order, or the losses differ by far more than rounding
    method, batch = layouts[layout]
    net = _net(method).train()
    params = list(net.parameters())
    cfg = method.config
    torch.manual_seed(11)
    new = method.loss(batch)
    g_new = torch.autograd.grad(new, params)
    torch.manual_seed(11)
    old = frozen.loss(net, batch, corr_weight=cfg.corr_weight, reduction=cfg.kl_reduction)
    g_old = torch.autograd.grad(old, params)
    assert abs(float(new.detach()) - float(old.detach())) <= _rel() * abs(float(old.detach()))
    grads = dict(zip([n for n, _ in net.named_parameters()], g_old, strict=True))
    for (name, _), a, b in zip(net.named_parameters(), g_new, g_old, strict=True):
        # a bias gradient sums the same output gradients as its weight's; where they cancel
        # (the key bias: softmax ignores a shift) its size is rounding of the weight's terms
        sibling = grads.get(name.replace(".bias", ".weight"), b)
        scale = max(float(b.abs().max()), float(sibling.abs().max()))
        torch.testing.assert_close(a, b, rtol=0, atol=_rel() * scale, msg=name)


def test_a_short_training_follows_the_old_trajectory():
    method = build_helo("cpu")
    net_new = method.model
    net_old = copy.deepcopy(net_new)
    data = random_dmer(64, seed=4)
    cfg = method.config
    steps = 6
    opts = [torch.optim.AdamW(n.parameters(), lr=1e-3) for n in (net_new, net_old)]
    for step in range(steps):
        batch = {k: v[(step % 4) * 16 : (step % 4 + 1) * 16] for k, v in data.items()}
        for net, opt, fn in (
            (net_new, opts[0], lambda b: method.loss(b)),
            (net_old, opts[1], lambda b: frozen.loss(net_old, b, corr_weight=1.0, reduction="sum")),
        ):
            net.train()
            torch.manual_seed(100 + step)  # the same masks on both sides
            loss = fn(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert cfg.corr_weight == 1.0 and cfg.kl_reduction == "sum"
    x = {k: v for k, v in data.items() if k != "target"}
    with torch.no_grad():
        p_new = torch.softmax(net_new.eval()(x), -1)
        p_old = torch.softmax(frozen.forward(net_old.eval(), x), -1)
    # per step the plan and the rounding as above; tests.tolerances's training model
    rtol = training_rtol(steps, BACKWARD_OPS) + steps * 2 * _rel()
    torch.testing.assert_close(p_new, p_old, rtol=rtol, atol=0)


def test_stacked_cross_attention_equals_one_call_per_set():
    torch.manual_seed(0)
    attn = DropKeyCrossAttention(16, 4, drop_key=0.5).train()
    q = torch.randn(3, 5, 16)
    sets = torch.randn(2, 3, 7, 16)
    torch.manual_seed(1)
    stacked = attn(q, sets)
    torch.manual_seed(1)  # the same draws, one set after the other
    apart = torch.cat([frozen.cross(attn, q, s) for s in sets], dim=1)
    assert stacked.shape == (3, 10, 16)
    # 16-wide projections, a 7-key softmax and LayerNorm over 16: a few dozen roundings
    torch.testing.assert_close(stacked, apart, rtol=0, atol=rounding_tol(64, 4.0))


def test_dropkey_mask_differs_between_sets():
    # one draw for both sets must still give each its own mask (not one mask broadcast)
    torch.manual_seed(0)
    attn = DropKeyCrossAttention(16, 4, drop_key=0.5).train()
    q = torch.randn(2, 5, 16)
    s = torch.randn(2, 7, 16)
    out = attn(q, torch.stack([s, s]))
    assert not torch.allclose(out[:, :5], out[:, 5:])


def test_eval_forward_in_chunks_is_the_forward_of_the_whole_batch(monkeypatch):
    method = build_helo("cpu")
    monkeypatch.setattr(type(method), "eval_chunk", 16)
    data = random_dmer(40, seed=6)  # 16 + 16 + 8
    method.model.eval()
    with torch.no_grad():
        chunked = method.logits(data)
        whole = method.model(data)
    assert chunked.shape == (40, 10)
    # each sample's forward is its own; the chunks differ only in GEMM blocking
    torch.testing.assert_close(chunked, whole, rtol=0, atol=_rel() * float(whole.abs().max()))
    method.model.train()  # training batches are never split (dropout draws, one loss)
    calls = []
    monkeypatch.setattr(method.model, "forward", lambda b: calls.append(len(b["eeg"])))
    method.logits(data)
    assert calls == [40]
