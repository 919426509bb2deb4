"""MSAF: shapes, a closed-form case, missing auxiliaries, and the primary-modality rule."""

from __future__ import annotations

import math

import pytest
import torch
from affectkit_mpcl.hopfield import HopfieldRetrieval
from affectkit_mpcl.method import resolve_primary
from affectkit_mpcl.msaf import MSAF

from affectkit import DataSpec, UserError
from tests.tolerances import rounding_tol

D = 8


def fixed_gate(msaf: MSAF, weights: list[float]) -> None:
    """Gate independent of the token: softmax(0·x + log w) = w."""
    for gate in msaf.gates.values():
        torch.nn.init.zeros_(gate.weight)
        gate.bias.data = torch.log(torch.tensor(weights))


def test_output_shape_is_primary_shape(registry):
    msaf = registry.get("fusion", "msaf").build(None, dim=D, auxiliary=["gsr", "ppg"])
    p = torch.randn(4, 18, D)
    out = msaf(p, {"gsr": torch.randn(4, 3, D), "ppg": torch.randn(4, 5, D)})
    assert out.shape == p.shape


def test_identical_auxiliary_reduces_to_closed_form():
    torch.manual_seed(0)
    memory = HopfieldRetrieval(dim=D, project=False)
    msaf = MSAF(dim=D, auxiliary=["aux"], scales=[0.25, 1.0, 4.0], memory=memory).eval()
    g = [0.2, 0.3, 0.5]
    fixed_gate(msaf, g)
    p = torch.randn(2, 6, D)
    out = msaf(p, {"aux": p.clone()})
    retrieved = sum(
        w * torch.softmax(s / math.sqrt(D) * p @ p.transpose(1, 2), -1) @ p
        for w, s in zip(g, [0.25, 1.0, 4.0], strict=True)
    )
    expected = torch.nn.functional.layer_norm(p + retrieved, (D,))
    # the logits (D terms), the 6-term softmax and weighted sum, 3 scales, the residual and
    # LayerNorm (2·D terms): a logit error δ moves a retrieval by up to 2δ·max|p|, and
    # LayerNorm divides every error by the row's standard deviation
    logit = 4.0 / math.sqrt(D) * (p.abs() @ p.abs().transpose(1, 2)).max()
    std = (p + retrieved).std(-1, unbiased=False).min()
    scale = p.abs().max() * (1 + 2 * logit) / std
    tol = rounding_tol(D + 6 + 2 + 6 + 3 + 1 + 2 * D + 3, scale=scale)
    torch.testing.assert_close(out, expected, atol=float(tol), rtol=0)


def test_constant_auxiliary_tokens_are_added_whatever_the_gate():
    torch.manual_seed(1)
    msaf = MSAF(dim=D, auxiliary=["aux"], memory=HopfieldRetrieval(dim=D, project=False)).eval()
    p, v = torch.randn(3, 5, D), torch.randn(3, 1, D)
    out = msaf(p, {"aux": v.expand(3, 4, D)})  # every stored pattern is v: retrieval = v
    # retrieving from 4 copies of v gives v up to the 4-term softmax and sum; then the
    # residual and LayerNorm (2·D terms), whose errors scale with 1/std of the row
    scale = (p + v).abs().max() / (p + v).std(-1, unbiased=False).min()
    tol = rounding_tol(4 + 2 + 4 + 1 + 2 * D + 3, scale=scale)
    expected = torch.nn.functional.layer_norm(p + v, (D,))
    torch.testing.assert_close(out, expected, atol=float(tol), rtol=0)


def test_missing_auxiliary_is_skipped_and_none_is_identity(registry):
    torch.manual_seed(2)
    msaf = registry.get("fusion", "msaf").build(None, dim=D, auxiliary=["gsr", "ppg"]).eval()
    p, a = torch.randn(2, 4, D), torch.randn(2, 3, D)
    only_gsr = msaf(p, {"gsr": a})
    assert only_gsr.shape == p.shape and torch.isfinite(only_gsr).all()
    # the ppg gate and retrieval do not enter: result equals a fusion built for gsr alone
    alone = MSAF(dim=D, auxiliary=["gsr"], memory=msaf.memory).eval()
    alone.gates["gsr"].load_state_dict(msaf.gates["gsr"].state_dict())
    alone.norm.load_state_dict(msaf.norm.state_dict())
    torch.testing.assert_close(only_gsr, alone(p, {"gsr": a}))
    assert torch.equal(msaf(p, {}), p)


def test_undeclared_auxiliary_is_an_error():
    msaf = MSAF(dim=D, auxiliary=["gsr"])
    with pytest.raises(KeyError, match="built for auxiliary modalities"):
        msaf(torch.randn(1, 2, D), {"temp": torch.randn(1, 2, D)})


def spec(groups: dict[str, str]) -> DataSpec:
    return DataSpec({m: (4,) for m in groups}, groups, ("a", "b"))  # type: ignore[arg-type]


def test_primary_auto_rule():
    dmer = spec(
        {
            "eeg": "physiological",
            "gsr": "physiological",
            "ppg": "physiological",
            "behavioral": "behavioral",
        }
    )
    wesad = spec(
        {
            "ppg": "physiological",
            "gsr": "physiological",
            "temp": "physiological",
            "behavioral": "behavioral",
        }
    )
    other = spec({"behavioral": "behavioral", "gsr": "physiological", "temp": "physiological"})
    assert resolve_primary("auto", dmer) == "eeg"
    assert resolve_primary("auto", wesad) == "ppg"
    assert resolve_primary("auto", other) == "gsr"
    assert resolve_primary("gsr", dmer) == "gsr"
    with pytest.raises(UserError, match="primary modality 'eeg' is not in this dataset"):
        resolve_primary("eeg", wesad)
    with pytest.raises(UserError, match="at least one physiological"):
        resolve_primary("auto", spec({"behavioral": "behavioral"}))


@pytest.mark.parametrize("project", [True, False])
def test_folded_fusion_has_the_per_modality_gradients(project):
    """MSAF gates every modality in one matmul and HopfieldRetrieval.mean_mixture moves the
    projections onto the stored tokens; the output and every gradient must equal the plain
    formula: per modality its own gate and unfolded retrieval, then the mean."""
    torch.manual_seed(3)
    memory = HopfieldRetrieval(dim=D, project=project)
    msaf = MSAF(dim=D, auxiliary=["gsr", "ppg"], memory=memory, dropout=0.0).train()
    p = torch.randn(3, 6, D, requires_grad=True)
    aux = {"gsr": torch.randn(3, 4, D, requires_grad=True), "ppg": torch.randn(3, 2, D)}
    aux["ppg"].requires_grad_()  # unequal token counts: each memory has its own softmax
    leaves = [p, *aux.values(), *msaf.parameters()]
    weights = torch.randn(3, 6, D)

    def plain() -> torch.Tensor:
        fused = [
            memory(p, y, beta=msaf.betas, mix=torch.softmax(msaf.gates[m](p), -1))
            for m, y in aux.items()
        ]
        return msaf.norm(p + torch.stack(fused).mean(0))

    got = msaf(p, aux)
    want = plain()
    torch.testing.assert_close(got, want)
    got_grads = torch.autograd.grad((got * weights).sum(), leaves)
    want_grads = torch.autograd.grad((want * weights).sum(), leaves)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)


def test_memory_without_a_folded_mixture_is_called_per_modality():
    """A fusion memory that only has forward(query, stored, beta=, mix=) gets one call per
    auxiliary modality and the mean; same result as HopfieldRetrieval's folded call."""
    torch.manual_seed(4)
    memory = HopfieldRetrieval(dim=D)

    class ForwardOnly(torch.nn.Module):
        def forward(self, query, stored, **kwargs):
            return memory(query, stored, **kwargs)

    folded = MSAF(dim=D, auxiliary=["gsr", "ppg"], memory=memory).eval()
    plain = MSAF(dim=D, auxiliary=["gsr", "ppg"], memory=ForwardOnly()).eval()
    plain.load_state_dict(folded.state_dict(), strict=False)
    p, aux = torch.randn(2, 5, D), {"gsr": torch.randn(2, 3, D), "ppg": torch.randn(2, 4, D)}
    torch.testing.assert_close(plain(p, aux), folded(p, aux))
