"""late-fusion: the prediction is the learned-weight mixture of per-modality distributions."""

from __future__ import annotations

import pytest
import torch
from baseline_helpers import build, tiny_split


@pytest.mark.parametrize("combine", ["probabilities", "logits"])
def test_output_is_the_weighted_combination_of_expert_distributions(combine):
    data = tiny_split().train
    net = build("late-fusion", data, {"combine": combine}).build_model().eval()
    with torch.no_grad():
        net.mix_logits.copy_(torch.tensor([1.0, -0.5, 0.3, 2.0]))
        batch = {m: torch.from_numpy(x[:7]) for m, x in data.modalities.items()}
        p = torch.stack(
            [torch.softmax(net.experts[m](batch[m].flatten(1)), -1) for m in net.modalities], 1
        )  # [B, M, K]
        w = torch.softmax(net.mix_logits, 0)
        if combine == "probabilities":
            expected = torch.einsum("bmk,m->bk", p, w)
        else:
            expected = torch.softmax(torch.einsum("bmk,m->bk", p.log(), w), -1)
        torch.testing.assert_close(torch.softmax(net(batch), -1), expected, atol=1e-6, rtol=1e-5)
    assert net.mix_logits.requires_grad
