"""``synthetic``: a DMER-shaped mixed-emotion dataset generated from a seed (version 2).

Generative story (fixed before any method was tuned; a change bumps ``VERSION``):

Labels. Each subject watches ``trials`` clips: a quarter positive, a quarter negative,
half mixed. A clip sets positive- and negative-affect intensities (PA, NA): positive
clips PA ~ U(.55, 1), NA ~ U(0, .2); negative the reverse; mixed both ~ U(.3, .9). Inside
each valence the intensity is split over item clusters by a Dirichlet(4, 4) draw:
energy {alert, excited, enthusiastic} and drive {inspired, determined} for PA; fear
{afraid, nervous, scared} and distress {upset, distressed} for NA. Item latent =
cluster activation + item noise (sd .12); rating = clip(round(1 + 4·latent + subject
bias + noise), 1, 5), with a per-subject bias ~ N(0, .35); the trial's distribution is
its ratings divided by their sum. Items of one cluster therefore co-occur, the two
valences trade off across positive/negative clips (PANAS structure).

Features. A trial's latent state z = [PA, NA, valence, arousal, energy, drive, fear,
distress] drifts inside the trial as AR(1) (ρ = .9, sd .12). Each modality is a fixed
random two-layer tanh network of the part of z it carries, plus per-subject gains
(log-normal, sd .25) and offsets (N(0, .6)), plus noise:

- EEG DE ``[18, 5]``: valence and arousal strongly, clusters weakly; noise sd 1.
- GSR 28 and PPG 27: mostly arousal (and fear); peripheral windows are 5-s moving
  averages of the per-second state (so neighbouring windows overlap as in DMER).
- behavioral 768: cluster-specific expression signatures (a 16-dim subspace) and
  valence; noise sd 1.5 on every dimension.

So EEG tells how strongly each valence is felt, the face tells which cluster, and
subject-independent evaluation is harder than subject-dependent (subject offsets).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from affectkit import DatasetConfig, DatasetReader, EmotionDataset

from .dmer import EMOTIONS  # synthetic is DMER-shaped: same 10 PANAS items, same order

# Version history: 1 split each valence over its clusters with Dirichlet(1.2, 1.2), which left
# items of one valence but different clusters uncorrelated; 2 uses Dirichlet(4, 4) so that the
# ratings show PANAS structure (all same-valence items correlate positively).
VERSION = "2"
# cluster of each emotion: 0 energy, 1 drive, 2 fear, 3 distress
ITEM_CLUSTER = np.array([1, 0, 0, 0, 1, 2, 3, 2, 2, 3])
LATENT = ("pa", "na", "valence", "arousal", "energy", "drive", "fear", "distress")
_WORLD_SEED = 20260223  # the fixed "physiology" of this dataset version


class SyntheticConfig(DatasetConfig):
    """Sizes and seed of the generated dataset."""

    seed: int = Field(0, ge=0, description="seed of subjects, trials and noise")
    subjects: int = Field(16, ge=2)
    trials: int = Field(32, ge=4, description="clips per subject (1/4 pos, 1/4 neg, 1/2 mixed)")
    windows: int = Field(30, ge=2, description="1-s windows per trial")
    eeg_channels: int = Field(18, ge=1)
    eeg_bands: int = Field(5, ge=1)
    gsr_dim: int = Field(28, ge=1)
    ppg_dim: int = Field(27, ge=1)
    behavioral_dim: int = Field(768, ge=1)
    noise: float = Field(1.0, ge=0, description="multiplies every feature noise level")


def _mlp_world(rng: np.random.Generator, d_in: int, d_out: int, hidden: int = 32):
    w1 = rng.normal(0, 1.0 / np.sqrt(d_in), (d_in, hidden)).astype(np.float32)
    b1 = rng.normal(0, 0.3, hidden).astype(np.float32)
    w2 = rng.normal(0, 1.0 / np.sqrt(hidden), (hidden, d_out)).astype(np.float32)
    return w1, b1, w2


def _apply(world, z: np.ndarray) -> np.ndarray:
    w1, b1, w2 = world
    return np.tanh(z @ w1 + b1) @ w2 * 2.0


def _moving_average(x: np.ndarray, k: int) -> np.ndarray:
    """Causal k-window mean along axis 2 of ``[S, T, W, D]`` (shorter at trial start)."""
    c = np.cumsum(x, axis=2)
    out = c.copy()
    out[:, :, k:] = c[:, :, k:] - c[:, :, :-k]
    counts = np.minimum(np.arange(1, x.shape[2] + 1), k).astype(np.float32)
    return out / counts[None, None, :, None]


def generate(cfg: SyntheticConfig) -> EmotionDataset:
    S, T, W = cfg.subjects, cfg.trials, cfg.windows
    rng = np.random.default_rng(cfg.seed)
    world = np.random.default_rng(_WORLD_SEED)

    # ---- labels -------------------------------------------------------------------------
    kinds = np.array(["positive"] * (T // 4) + ["negative"] * (T // 4))
    kinds = np.concatenate([kinds, np.array(["mixed"] * (T - len(kinds)))])
    kind = np.stack([rng.permutation(kinds) for _ in range(S)])  # [S, T]
    pa = np.where(
        kind == "positive",
        rng.uniform(0.55, 1.0, (S, T)),
        np.where(kind == "negative", rng.uniform(0.0, 0.2, (S, T)), rng.uniform(0.3, 0.9, (S, T))),
    )
    na = np.where(
        kind == "negative",
        rng.uniform(0.55, 1.0, (S, T)),
        np.where(kind == "positive", rng.uniform(0.0, 0.2, (S, T)), rng.uniform(0.3, 0.9, (S, T))),
    )
    split_pa = rng.dirichlet([4.0, 4.0], (S, T))  # energy vs drive
    split_na = rng.dirichlet([4.0, 4.0], (S, T))  # fear vs distress
    clusters = (
        np.stack(
            [
                pa * split_pa[..., 0],
                pa * split_pa[..., 1],
                na * split_na[..., 0],
                na * split_na[..., 1],
            ],
            axis=-1,
        )
        * 1.6
    )  # [S, T, 4]
    latent_items = clusters[..., ITEM_CLUSTER] + rng.normal(0, 0.12, (S, T, len(EMOTIONS)))
    bias = rng.normal(0, 0.35, (S, 1, 1))
    ratings = np.clip(
        np.rint(1 + 4 * latent_items + bias + rng.normal(0, 0.3, latent_items.shape)), 1, 5
    )
    targets = ratings / ratings.sum(-1, keepdims=True)  # [S, T, K]

    # ---- latent state per window -----------------------------------------------------------
    valence, arousal = pa - na, 0.6 * np.maximum(pa, na) + 0.4 * clusters[..., 2] / 1.6
    z_trial = np.stack(
        [pa, na, valence, arousal, *np.moveaxis(clusters, -1, 0)], axis=-1
    )  # [S,T,8]
    eps = rng.normal(0, 0.12, (S, T, W, len(LATENT)))
    drift = np.zeros_like(eps)
    drift[:, :, 0] = eps[:, :, 0]
    for w in range(1, W):  # AR(1) over a handful of windows; vectorised over S, T, latent
        drift[:, :, w] = 0.9 * drift[:, :, w - 1] + np.sqrt(1 - 0.81) * eps[:, :, w]
    z = (z_trial[:, :, None, :] + drift).astype(np.float32)  # [S, T, W, 8]

    def carried(weights):
        return z * np.asarray(weights, dtype=np.float32)

    noise = cfg.noise
    n_eeg = cfg.eeg_channels * cfg.eeg_bands
    spec = {
        # modality: (latent weights, out dim, noise sd, moving average)
        "eeg": ([1, 1, 1.5, 1.5, 0.3, 0.3, 0.3, 0.3], n_eeg, 1.0, 1),
        "gsr": ([0.2, 0.2, 0.2, 1.5, 0.1, 0.1, 0.8, 0.1], cfg.gsr_dim, 0.8, 5),
        "ppg": ([0.2, 0.2, 0.4, 1.5, 0.2, 0.1, 0.6, 0.1], cfg.ppg_dim, 0.9, 5),
    }
    feats: dict[str, np.ndarray] = {}
    for name, (wts, dim, sd, smooth) in spec.items():
        net = _mlp_world(world, len(LATENT), dim)
        base = world.normal(0, 1, dim).astype(np.float32)
        x = _apply(net, carried(wts)) + base
        gain = np.exp(rng.normal(0, 0.25, (S, 1, 1, dim))).astype(np.float32)
        offset = rng.normal(0, 0.6, (S, 1, 1, dim)).astype(np.float32)
        x = x * gain + offset + rng.normal(0, sd * noise, x.shape).astype(np.float32)
        feats[name] = _moving_average(x, smooth) if smooth > 1 else x
    # behavioral: cluster signatures in a 16-dim subspace, mixed into 768 dims
    sub = _apply(
        _mlp_world(world, len(LATENT), 16), carried([0.2, 0.2, 0.8, 0.3, 1.5, 1.5, 1.5, 1.5])
    )
    proj = world.normal(0, 1 / 4, (16, cfg.behavioral_dim)).astype(np.float32)
    beh = sub @ proj * 2.0
    beh = beh * np.exp(rng.normal(0, 0.25, (S, 1, 1, 1))).astype(np.float32)
    beh += rng.normal(0, 0.6, (S, 1, 1, cfg.behavioral_dim)).astype(np.float32)
    beh += rng.normal(0, 1.5 * noise, beh.shape).astype(np.float32)

    n = S * T * W
    modalities = {
        "eeg": feats["eeg"].reshape(n, cfg.eeg_channels, cfg.eeg_bands),
        "gsr": feats["gsr"].reshape(n, cfg.gsr_dim),
        "ppg": feats["ppg"].reshape(n, cfg.ppg_dim),
        "behavioral": beh.reshape(n, cfg.behavioral_dim),
    }
    subj = np.repeat(np.arange(1, S + 1), T * W)
    return EmotionDataset(
        name="synthetic",
        modalities=modalities,
        targets=np.repeat(targets.reshape(S * T, -1), W, axis=0),
        emotions=list(EMOTIONS),
        subject=subj.astype(str),
        trial=np.tile(np.repeat(np.arange(T), W), S),
        window=np.tile(np.arange(W), S * T),
        time=np.tile(np.arange(W, dtype=np.float32), S * T),
        groups={
            "eeg": "physiological",
            "gsr": "physiological",
            "ppg": "physiological",
            "behavioral": "behavioral",
        },
        info={
            "version": VERSION,
            "overlap_windows": 4,
            "trial_kind": kind.reshape(-1).tolist(),
            "ratings": ratings.reshape(S * T, -1).astype(int).tolist(),
            "primary": "eeg",
        },
    )


class SyntheticReader(DatasetReader):
    """Deterministic DMER-shaped synthetic mixed-emotion data (10 PANAS items)."""

    version: ClassVar[str] = VERSION
    protocol_defaults: ClassVar[dict] = {"name": "subject-independent", "folds": 4}

    def load(self) -> EmotionDataset:
        return generate(self.config)
