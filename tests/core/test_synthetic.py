import numpy as np
from affectkit_datasets.synthetic import EMOTIONS, ITEM_CLUSTER

from affectkit.datasets import load_dataset
from affectkit.plugins import get_registry


def gen(**kw):
    return load_dataset(
        get_registry().get("dataset", "synthetic").config_cls(**kw), use_cache=False
    )


def test_shapes_and_metadata():
    d = gen(subjects=3, trials=8, windows=5)
    assert len(d) == 3 * 8 * 5
    assert d.spec.shapes == {"eeg": (18, 5), "gsr": (28,), "ppg": (27,), "behavioral": (768,)}
    assert tuple(d.emotions) == EMOTIONS
    assert d.groups["behavioral"] == "behavioral" and d.groups["eeg"] == "physiological"
    # every window of a trial carries that trial's distribution
    keys = d.trial_keys()
    for k in np.unique(keys)[:5]:
        assert np.ptp(d.targets[keys == k], axis=0).max() == 0


def test_deterministic_from_seed():
    a, b, c = (
        gen(subjects=2, trials=4, windows=3),
        gen(subjects=2, trials=4, windows=3),
        gen(subjects=2, trials=4, windows=3, seed=1),
    )
    for m in a.modalities:
        assert np.array_equal(a.modalities[m], b.modalities[m])
    assert np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.targets, c.targets)


def test_ratings_show_panas_structure():
    d = gen(subjects=16, trials=32, windows=2)
    ratings = np.asarray(d.info["ratings"], dtype=float)  # [S*T, 10]
    assert ratings.min() >= 1 and ratings.max() <= 5
    c = np.corrcoef(ratings.T)
    pos, neg = np.arange(5), np.arange(5, 10)
    within = [c[i, j] for g in (pos, neg) for i in g for j in g if i < j]
    cross = [c[i, j] for i in pos for j in neg]
    assert min(within) > 0.2, "same-valence items co-occur"
    assert max(cross) < 0.05, "opposite valences are unrelated or exclusive"
    # items of one cluster correlate more than items of different clusters of one valence
    same = [
        c[i, j] for i in range(10) for j in range(i + 1, 10) if ITEM_CLUSTER[i] == ITEM_CLUSTER[j]
    ]
    diff = [
        c[i, j]
        for g in (pos, neg)
        for i in g
        for j in g
        if i < j and ITEM_CLUSTER[i] != ITEM_CLUSTER[j]
    ]
    assert np.mean(same) > np.mean(diff) + 0.1


def test_subject_offsets_make_subjects_distinguishable():
    d = gen(subjects=4, trials=8, windows=4)
    gsr = d.modalities["gsr"]
    means = np.stack([gsr[d.subject == s].mean(0) for s in d.subjects])
    within = np.mean([gsr[d.subject == s].std(0).mean() for s in d.subjects])
    assert np.std(means, axis=0).mean() > 0.2 * within
