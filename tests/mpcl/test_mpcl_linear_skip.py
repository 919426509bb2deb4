"""mpcl's L2-penalised linear skip: closed form, zero start, penalty in the objective, switch."""

from __future__ import annotations

import pytest
import torch

from affectkit import DataSpec, EmotionDataset, TrainConfig

TINY = {"name": "synthetic", "subjects": 4, "trials": 8, "windows": 6}


@pytest.fixture(scope="module")
def tiny() -> EmotionDataset:
    from affectkit import get_registry
    from affectkit.datasets import load_dataset

    cfg = get_registry().get("dataset", "synthetic").config_cls(**TINY, cache=False)
    return load_dataset(cfg, use_cache=False)


def net(registry, spec: DataSpec, **cfg):
    train = TrainConfig(epochs=1, batch_size=32, patience=0)
    method = registry.get("method", "mpcl").build(
        {"dim": 16, "weight_average": None, **cfg}, spec=spec, train=train, seed=0, device="cpu"
    )
    return method.build_model()


def batch_of(data: EmotionDataset, n: int = 12) -> dict[str, torch.Tensor]:
    out = {m: torch.from_numpy(x[:n]) for m, x in data.modalities.items()}
    out["target"] = torch.from_numpy(data.targets[:n])
    return out


def test_skip_is_w_times_the_concatenated_flattened_inputs():
    from affectkit_mpcl.linear_skip import LinearSkip

    skip = LinearSkip(shapes={"a": (2, 3), "b": (4,)}, num_emotions=5, l2=0.5)
    w, b = torch.randn(5, 10), torch.randn(5)
    with torch.no_grad():
        skip.weight.copy_(w)
        skip.bias.copy_(b)
    xa, xb = torch.randn(7, 2, 3), torch.randn(7, 4)
    v = torch.cat([xa.reshape(7, 6), xb], dim=1)  # modality order, row-major flattening
    torch.testing.assert_close(skip({"a": xa, "b": xb}), v @ w.T + b)
    torch.testing.assert_close(skip.penalty(), 0.25 * (w * w).sum())  # λ/2 ‖W‖², no bias


def test_skip_starts_at_zero_so_the_initial_model_is_the_deep_one(registry, tiny):
    b = batch_of(tiny)
    torch.manual_seed(0)
    with_skip = net(registry, tiny.spec, linear_skip=0.3).eval()
    torch.manual_seed(0)
    without = net(registry, tiny.spec, linear_skip=None).eval()
    assert without.skip is None and with_skip.skip is not None
    assert set(with_skip.skip.modalities) == set(tiny.spec.shapes)
    with torch.no_grad():
        torch.testing.assert_close(with_skip(b), without(b))
        with_skip.skip.bias.fill_(1.0)  # a shift of every logit: same distribution
        torch.testing.assert_close(with_skip(b).softmax(-1), without(b).softmax(-1))
        with_skip.skip.weight.normal_()
        assert not torch.allclose(with_skip(b), without(b))


def test_penalty_enters_the_objective_and_the_skip_gets_gradient(registry, tiny):
    b = batch_of(tiny)
    torch.manual_seed(0)
    model = net(registry, tiny.spec, linear_skip=2.0).eval()
    with torch.no_grad():
        model.skip.weight.fill_(0.1)
    terms = model.objective(b)
    assert terms["skip"].item() == pytest.approx(0.5 * 2.0 * 0.01 * model.skip.weight.numel())
    rest = terms["kl"] + model.cfg.ground_weight * terms["ground"]
    rest = rest + model.cfg.prd_weight * terms["prd"] + model.cfg.pcl_weight * terms["pcl"]
    torch.testing.assert_close(terms["total"], rest + terms["skip"])
    terms["total"].backward()
    assert model.skip.weight.grad.abs().sum() > 0
    assert model.skip.bias.grad.abs().sum() > 0
    # off: no term, no module
    assert "skip" not in net(registry, tiny.spec, linear_skip=None).objective(b)
