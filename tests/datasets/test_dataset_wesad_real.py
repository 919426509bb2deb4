"""Real-signal facts on the shared WESAD wrist subset (10 subjects, read in place)."""

import os
from pathlib import Path

import numpy as np
import pytest

from affectkit.datasets import load_dataset
from affectkit.plugins import get_registry

REPO = Path(__file__).resolve().parents[2]
DATA = Path(
    os.environ.get("AFFECTKIT_WESAD_DIR") or REPO.parent / "shared" / "data" / "wesad-wrist"
)

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not DATA.is_dir(),
        reason=f"real WESAD wrist data not found at {DATA} (set AFFECTKIT_WESAD_DIR to its folder)",
    ),
]


@pytest.fixture(scope="module")
def real():
    cfg = get_registry().get("dataset", "wesad").config_cls(data_dir=DATA)
    return load_dataset(cfg, use_cache=False)


def per_condition_mean(data, modality, feature):
    x = data.modalities[modality][:, data.info["feature_names"][modality].index(feature)]
    out = {}
    for s in data.subjects:
        for ci, cond in enumerate(data.info["conditions"]):
            rows = (data.subject == s) & (data.trial == ci)
            if rows.any():
                out[s, cond] = float(np.nanmean(x[rows]))
    return out


def test_ten_subjects_five_conditions(real):
    assert real.subjects == [f"S{i}" for i in range(2, 12)]
    assert set(real.info["layout"].values()) == {"e4-folder"}
    # S5's Medi 1 PANAS row holds Nan for Nervous: dropped under the default rule
    assert real.info["dropped_conditions"] == ["S5 Medi 1: Nervous is Nan"]
    conditions = {(s, t) for s, t in zip(real.subject, real.trial, strict=True)}
    assert len(conditions) == 10 * 5 - 1


def test_heart_rate_from_bvp_is_physiological_in_every_condition(real):
    hr = per_condition_mean(real, "ppg", "hr_mean")
    assert len(hr) == 49
    bad = {k: round(v, 1) for k, v in hr.items() if not 40 <= v <= 140}
    assert not bad, f"mean HR outside 40-140 bpm: {bad}"


def test_skin_conductance_higher_in_tsst_than_base(real):
    eda = per_condition_mean(real, "gsr", "signal_mean")
    higher = [s for s in real.subjects if eda[s, "TSST"] > eda[s, "Base"]]
    assert len(higher) >= 8, f"TSST > Base only for {higher}"


def test_panas_targets_are_distributions_over_ten_items(real):
    assert real.targets.shape[1] == 10 and real.emotions[6] == "upset"
    assert real.info["emotion_items"]["upset"] == "Annoyed"
    np.testing.assert_allclose(real.targets.sum(axis=1), 1.0, atol=1e-5)
    assert (real.targets > 0).all()  # PANAS ratings are 1-5, never 0
