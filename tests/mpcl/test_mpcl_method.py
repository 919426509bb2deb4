"""The mpcl method: composition, ablations, gradients, determinism, save/load, errors, and
the L2-penalised linear skip (closed form, zero start, penalty in the objective, switch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectkit import DataSpec, EmotionDataset, TrainConfig, UserError
from tests.tolerances import rounding_tol

TINY = {"name": "synthetic", "subjects": 4, "trials": 8, "windows": 6}


@pytest.fixture(scope="module")
def tiny() -> EmotionDataset:
    from affectkit import get_registry
    from affectkit.datasets import load_dataset

    cfg = get_registry().get("dataset", "synthetic").config_cls(**TINY, cache=False)
    return load_dataset(cfg, use_cache=False)


def build(registry, spec: DataSpec, seed: int = 0, epochs: int = 2, **cfg):
    train = TrainConfig(epochs=epochs, batch_size=32, patience=0)
    return registry.get("method", "mpcl").build(
        {"dim": 16, **cfg}, spec=spec, train=train, seed=seed, device="cpu"
    )


def batch_of(data: EmotionDataset, n: int = 16) -> dict[str, torch.Tensor]:
    out = {m: torch.from_numpy(x[:n]) for m, x in data.modalities.items()}
    out["target"] = torch.from_numpy(data.targets[:n])
    return out


def test_registered_parts_and_tags(registry):
    assert registry.get("method", "mpcl").tags == {"mpcl"}
    assert "mpcl" not in registry.names("method", tag="baseline")
    for kind, name in [
        ("memory", "hopfield"),
        ("memory", "hopfield-pooling"),
        ("memory", "prototype-bank"),
        ("fusion", "msaf"),
        ("loss", "prd"),
        ("loss", "pcl"),
        ("head", "hsc"),
        ("encoder", "channel-tokens"),
        ("encoder", "graph-tokens"),
        ("encoder", "projection-tokens"),
    ]:
        assert (kind, name) in registry


ABLATIONS = [
    {},
    {"use_msaf": False},
    {"use_prd": False},
    {"use_pcl": False},
    {"use_hsc": False},
    {"linear_skip": None},
    {"embedding_pool": "hopfield"},
    {"embedding_pool": "mean"},
    {"embedding_pool": "flatten", "encoders": {"eeg": {"name": "graph-tokens"}}},
    {"embedding_pool": "flatten", "use_msaf": False},
    {"head": {"name": "hsc", "summary": False}},
    {"head": {"name": "hsc", "emotion_readout": False}},
]


@pytest.mark.parametrize("switch", ABLATIONS, ids=lambda s: next(iter(s), "full"))
def test_one_step_reaches_every_parameter(registry, tiny, switch):
    method = build(registry, tiny.spec, **switch)
    torch.manual_seed(0)
    method.model = method.build_model()
    method.model.train()
    terms = method.net.objective(batch_of(tiny))
    terms["total"].backward()
    trained = [(n, p) for n, p in method.model.named_parameters() if p.requires_grad]
    assert {id(p) for _, p in trained} == {id(p) for p in method.net.parameters()}
    dead = [n for n, p in trained if p.grad is None or not p.grad.any()]
    assert not dead, f"no gradient reaches {dead}"
    expected = {"kl", "ground", "total"} | ({"prd"} if switch.get("use_prd", True) else set())
    expected |= {"pcl"} if switch.get("use_pcl", True) else set()
    expected |= {"skip"} if switch.get("linear_skip", 0.3) is not None else set()
    assert set(terms) == expected
    assert all(torch.isfinite(t) for t in terms.values())


def test_ablations_remove_their_module(registry, tiny):
    from affectkit_mpcl.hsc import HSC

    def net(**s):
        return build(registry, tiny.spec, weight_average=None, **s).build_model()

    full = net()
    assert full.fusion is not None and full.prd is not None and full.pcl is not None
    assert isinstance(full.head, HSC)
    assert net(use_msaf=False).fusion is None
    assert net(use_prd=False).prd is None
    assert net(use_pcl=False).pcl is None
    assert not isinstance(net(use_hsc=False).head, HSC)
    # MSAF off: the auxiliary tokens are concatenated instead of fused
    b = batch_of(tiny, 4)
    n = net(use_msaf=False)
    assert full.primary == "eeg" and set(full.auxiliary) == {"gsr", "ppg"}
    tokens = sum(n.encoders[m].num_tokens for m in ["eeg", "gsr", "ppg"])
    with torch.no_grad():
        assert n.parts(b).logits.shape == (4, 10)
        phys = torch.cat([n.encoders[m](b[m]) for m in ["eeg", "gsr", "ppg"]], 1)
    assert phys.shape[1] == tokens


def test_hsc_classifier_reads_the_enriched_summary(registry, tiny):
    """With summary on, changing [x̃ ‖ ỹ] alone changes the logits; off, it cannot."""
    for summary in (True, False):
        torch.manual_seed(0)
        net = build(
            registry, tiny.spec, weight_average=None, head={"name": "hsc", "summary": summary}
        )
        net = net.build_model().eval()
        tokens = torch.randn(4, 7, 16)
        s = torch.randn(4, 32)
        with torch.no_grad():
            changed = net.head(tokens, summary=s) - net.head(tokens, summary=s + 1.0)
        assert net.head.summary_dim == (32 if summary else 0)
        assert changed.abs().max() > 1e-4 if summary else changed.abs().max() == 0
    with pytest.raises(ValueError, match="summary"):
        build(registry, tiny.spec, weight_average=None).build_model().head(tokens)


def test_fit_predict_distributions_determinism_and_roundtrip(registry, tiny):
    train, test = tiny.subset(np.arange(0, 144)), tiny.subset(np.arange(144, 192))
    a = build(registry, tiny.spec, seed=3)
    a.fit(train)
    pa = a.predict(test)
    assert pa.shape == (48, 10) and (pa >= 0).all()
    # a softmax over 10 emotions (exp, a 10-term sum, a division), summed again: 3·10 roundings
    np.testing.assert_allclose(pa.sum(1), 1.0, rtol=0, atol=rounding_tol(3 * 10))
    b = build(registry, tiny.spec, seed=3)
    b.fit(train)
    np.testing.assert_array_equal(pa, b.predict(test))  # same seed, same numbers
    c = build(registry, tiny.spec, seed=4)
    c.fit(train)
    assert not np.allclose(pa, c.predict(test))
    d = build(registry, tiny.spec, seed=3)
    d.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(pa, d.predict(test))


def test_threads_setting_is_restored(registry, tiny):
    before = torch.get_num_threads()
    m = build(registry, tiny.spec, epochs=1, threads=before + 1)
    m.fit(tiny.subset(np.arange(32)))
    assert torch.get_num_threads() == before
    m.predict(tiny.subset(np.arange(8)))
    assert torch.get_num_threads() == before


def test_dataset_without_behavioral_needs_prd_pcl_off(registry, tiny):
    phys_only = DataSpec(
        {m: s for m, s in tiny.spec.shapes.items() if m != "behavioral"},
        {m: g for m, g in tiny.spec.groups.items() if m != "behavioral"},
        tiny.spec.emotions,
    )
    with pytest.raises(UserError, match="use_prd=false"):
        build(registry, phys_only).build_model()
    net = build(registry, phys_only, use_prd=False, use_pcl=False).build_model()
    b = {k: v for k, v in batch_of(tiny, 4).items() if k != "behavioral"}
    assert net(b).shape == (4, 10)


def test_bad_modality_names_are_user_errors(registry, tiny):
    with pytest.raises(UserError, match=r"method\.auxiliary"):
        build(registry, tiny.spec, auxiliary=["temp"]).build_model()
    with pytest.raises(UserError, match=r"method\.encoders"):
        build(registry, tiny.spec, encoders={"face": "projection-tokens"}).build_model()
    with pytest.raises(UserError, match="primary"):
        build(registry, tiny.spec, primary="ppg_raw").build_model()


def test_config_composes_registered_components_by_name(registry, tiny):
    cfg = registry.get("method", "mpcl").config_cls.model_validate(
        {
            "name": "mpcl",
            "fusion": {"name": "msaf", "scales": [1.0, 8.0]},
            "encoders": {"behavioral": {"name": "projection-tokens", "tokens": 2}},
        }
    )
    assert cfg.fusion.scales == [1.0, 8.0] and cfg.bank.name == "prototype-bank"
    method = build(registry, tiny.spec, **cfg.model_dump(exclude={"name", "dim"}))
    method.model = method.build_model()
    net = method.net
    assert net.encoders["behavioral"].num_tokens == 2
    assert len(net.fusion.betas) == 2
    with pytest.raises(ValueError, match="unknown fusion 'msa'"):
        registry.get("method", "mpcl").config_cls.model_validate(
            {"name": "mpcl", "fusion": {"name": "msa"}}
        )


def test_wesad_like_dataset_uses_ppg_as_primary(registry):
    """No EEG: flat wrist features; ppg becomes the MSAF primary, gsr and temp auxiliaries."""
    shapes = {"ppg": (27,), "gsr": (28,), "temp": (6,), "behavioral": (12,)}
    groups = {
        "ppg": "physiological",
        "gsr": "physiological",
        "temp": "physiological",
        "behavioral": "behavioral",
    }
    spec = DataSpec(shapes, groups, tuple(f"e{i}" for i in range(10)))  # type: ignore[arg-type]
    method = build(registry, spec, weight_average=None)
    net = method.build_model()
    assert net.primary == "ppg" and net.auxiliary == ["gsr", "temp"]
    batch = {m: torch.randn(5, *s) for m, s in shapes.items()}
    batch["target"] = torch.softmax(torch.randn(5, 10), -1)
    assert net(batch).shape == (5, 10)
    terms = net.objective(batch)
    assert torch.isfinite(terms["total"])


def test_partial_sub_component_overrides_keep_the_default_component(tmp_path):
    """``--set method.bank.tau=0.5`` changes the default bank; a name selects another one."""
    from affectkit.bench import resolve_configs
    from affectkit.errors import ConfigError

    (cfg,) = resolve_configs(
        ["mpcl"],
        overrides=["method.bank.tau=0.5", "method.head.dropout=0.3", "method.pcl.memory.beta=2"],
    )
    m = cfg.method
    assert (m.bank.name, m.bank.tau, m.bank.per_emotion) == ("prototype-bank", 0.5, 4)
    assert (m.head.name, m.head.dropout, m.head.summary) == ("hsc", 0.3, True)
    # nested: PCL's memory keeps its own default (no projections) beside the new β
    assert (m.pcl.memory.name, m.pcl.memory.beta, m.pcl.memory.project) == ("hopfield", 2.0, False)
    # a file section without a name works the same way
    path = tmp_path / "run.yaml"
    path.write_text("method:\n  name: mpcl\n  fusion:\n    scales: [1, 2]\n", encoding="utf-8")
    (cfg,) = resolve_configs(["mpcl"], files=[path])
    assert cfg.method.fusion.name == "msaf" and cfg.method.fusion.scales == [1.0, 2.0]
    # a misspelt key inside a partial section is still an error with its path
    with pytest.raises(ConfigError) as exc:
        resolve_configs(["mpcl"], overrides=["method.bank.tua=0.5"])
    assert any("bank" in path and "tua" in path for path, _ in exc.value.errors)


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
    with_skip = build(registry, tiny.spec, weight_average=None, linear_skip=0.3)
    with_skip = with_skip.build_model().eval()
    torch.manual_seed(0)
    without = build(registry, tiny.spec, weight_average=None, linear_skip=None).build_model().eval()
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
    model = build(registry, tiny.spec, weight_average=None, linear_skip=2.0).build_model().eval()
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
    off = build(registry, tiny.spec, weight_average=None, linear_skip=None).build_model()
    assert "skip" not in off.objective(b)
