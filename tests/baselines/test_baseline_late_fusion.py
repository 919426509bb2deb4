"""late-fusion: the prediction is the learned-weight mixture of per-modality distributions."""

from __future__ import annotations

import pytest
import torch
from baseline_helpers import build, tiny_split

from tests.tolerances import rounding_tol


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
        # the experts' chains (768 inputs, then 128, then 10), the 4-expert mixture and a
        # softmax and log round trip (3·10), on logits of this size: an absolute logit
        # error δ is a relative error of at most 2δ in each probability
        logits = float(net(batch).abs().max()) + 1.0
        rel = 2 * rounding_tol(768 + 128 + 10 + 4 + 3 * 10, scale=logits)
        torch.testing.assert_close(torch.softmax(net(batch), -1), expected, atol=0, rtol=rel)
    assert net.mix_logits.requires_grad
