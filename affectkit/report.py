"""``affectkit report RUN_DIR``: report.md and PNG figures from a bench run directory.

Everything is recomputed from what the results store holds (results.json and the per-fold
test predictions), so a report can be rebuilt at any time, also for a run still in
progress. Figures (matplotlib, extra ``plots``, imported only here):

- ``figures/metrics.png``: per-method mean ± std over folds for every metric;
- ``figures/distributions.png``: predicted vs. ground-truth distributions of a few test trials;
- ``figures/cooccurrence.png``: emotion correlation matrices, ground truth vs. each method;
- ``figures/subjects.png``: per-subject scores (which subjects are hard).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .io import atomic_write, write_text
from .metrics import METRIC_NAMES, METRICS, per_sample
from .results import DamagedFile, ResultsStore, best_per_metric, load_json, load_results, warn
from .significance import MARKER_LEGEND, cell_marker, paired_tests

SUBJECT_METRICS = ("kl", "intersection")
GT_COLOR = "#333333"


@dataclass
class MethodPredictions:
    """Test predictions of one method, all stored folds of every seed concatenated."""

    pred: np.ndarray
    target: np.ndarray
    subject: np.ndarray
    trial: np.ndarray
    window: np.ndarray
    seed: np.ndarray
    fold: np.ndarray


def collect_predictions(
    run_dir: str | Path, results: Mapping[str, Any], skipped: list[str] | None = None
) -> dict[str, MethodPredictions]:
    """Every stored fold's test predictions per method.

    A fold whose ``.npz`` is gone or unreadable is left out of the figures and the
    per-subject table, with a warning naming it; its description is appended to
    ``skipped`` (report.md lists them).
    """
    store = ResultsStore(run_dir)
    out: dict[str, MethodPredictions] = {}
    for name, r in results["methods"].items():
        parts: dict[str, list[np.ndarray]] = {k: [] for k in MethodPredictions.__dataclass_fields__}
        for f in r["folds"]:
            seed, fold = int(f["run_seed"]), int(f["fold"])
            try:
                z = store.load_predictions(name, seed, fold)
            except (FileNotFoundError, DamagedFile) as exc:
                path = store.fold_stem(name, seed, fold).with_suffix(".npz")
                why = "is missing" if isinstance(exc, FileNotFoundError) else "is unreadable: "
                why += getattr(exc, "reason", "")
                what = f"{name} seed {seed} fold {fold} ({path} {why})"
                warn(
                    f"the predictions of {what} are left out of the report's figures and "
                    f"per-subject scores. Re-run `affectkit bench` with --out {store.run_dir} "
                    "to recompute that fold, then `affectkit report` again."
                )
                if skipped is not None:
                    skipped.append(what)
                continue
            n = len(z["pred"])
            for k in ("pred", "target", "subject", "trial", "window"):
                parts[k].append(z[k])
            parts["seed"].append(np.full(n, seed))
            parts["fold"].append(np.full(n, fold))
        if parts["pred"]:
            out[name] = MethodPredictions(**{k: np.concatenate(v) for k, v in parts.items()})
    return out


# --------------------------------------------------------------------------- analysis
def per_subject_scores(
    preds: Mapping[str, MethodPredictions], metrics: Sequence[str] = SUBJECT_METRICS
) -> dict[str, dict[str, dict[str, float]]]:
    """metric -> method -> subject -> mean score over that subject's test windows (all seeds)."""
    out: dict[str, dict[str, dict[str, float]]] = {m: {} for m in metrics}
    for name, p in preds.items():
        scores = per_sample(p.target, p.pred, {m: METRICS[m] for m in metrics})
        for m in metrics:
            out[m][name] = {
                str(s): float(scores[m][p.subject == s].mean()) for s in np.unique(p.subject)
            }
    return out


def correlation(x: np.ndarray) -> np.ndarray:
    """Pearson correlation between columns; NaN where a column is constant."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    sd = np.sqrt((x**2).mean(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (x.T @ x) / len(x) / np.outer(sd, sd)
    c[~np.isfinite(c)] = np.nan
    return np.clip(c, -1.0, 1.0)


def cooccurrence(
    preds: Mapping[str, MethodPredictions], seed: int
) -> tuple[np.ndarray | None, dict[str, np.ndarray], dict[str, float]]:
    """Ground-truth and predicted emotion correlation matrices over the test windows of
    ``seed``, and how well each method's off-diagonal pattern matches the ground truth's."""
    gt: np.ndarray | None = None
    mats: dict[str, np.ndarray] = {}
    agreement: dict[str, float] = {}
    for name, p in preds.items():
        sel = p.seed == seed
        if not sel.any():
            continue
        if gt is None:
            gt = correlation(p.target[sel])
        mats[name] = correlation(p.pred[sel])
    if gt is not None:
        iu = np.triu_indices(len(gt), k=1)
        for name, c in mats.items():
            a, b = gt[iu], c[iu]
            ok = np.isfinite(a) & np.isfinite(b)
            agreement[name] = (
                float(np.corrcoef(a[ok], b[ok])[0, 1])
                if ok.sum() > 2 and a[ok].std() > 0 and b[ok].std() > 0
                else float("nan")
            )
    return gt, mats, agreement


def pick_trials(p: MethodPredictions, seed: int, n: int) -> list[tuple[str, int]]:
    """A few test trials with different ground truths: the most peaked one first, then
    each time the trial farthest from those already picked."""
    sel = p.seed == seed
    keys = sorted({(str(s), int(t)) for s, t in zip(p.subject[sel], p.trial[sel], strict=True)})
    if not keys:
        return []
    gts = np.stack([_trial_mean(p.target, p, seed, k) for k in keys])
    chosen = [int(np.argmax(gts.max(axis=1)))]
    while len(chosen) < min(n, len(keys)):
        d = np.min([np.abs(gts - gts[c]).sum(axis=1) for c in chosen], axis=0)
        d[chosen] = -1
        chosen.append(int(np.argmax(d)))
    return [keys[i] for i in chosen]


def _trial_mask(p: MethodPredictions, seed: int, key: tuple[str, int]) -> np.ndarray:
    return (p.seed == seed) & (p.subject == key[0]) & (p.trial == key[1])


def _trial_mean(values: np.ndarray, p: MethodPredictions, seed: int, key: tuple[str, int]):
    return values[_trial_mask(p, seed, key)].mean(axis=0)


# --------------------------------------------------------------------------- figures
def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError(
            "affectkit report needs matplotlib, which is not installed. Install it with "
            "`pip install 'affectkit[plots]'`."
        ) from None
    # a bare Figure renders with Agg and never touches pyplot's global backend/state
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: Path) -> Path:
    # no bbox_inches="tight": the constrained layout already fits every label inside the
    # figure, and "tight" adds a layout pass (about 0.3 s of a 9-method report's 7 s)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110))
    return path


def _colors(names: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def plot_metric_bars(results: Mapping[str, Any], tests: Mapping[str, Any], path: Path) -> Path:
    names = list(results["methods"])
    colors = _colors(names)
    best = best_per_metric(dict(results))
    fig = _figure(max(9.0, 1.1 * len(names) * 3), 6.0)
    axes = fig.subplots(2, 3).ravel()
    x = np.arange(len(names))
    for ax, m in zip(axes, METRIC_NAMES, strict=True):
        mean = np.array([results["methods"][n]["summary"][m]["mean"] for n in names])
        std = np.array([results["methods"][n]["summary"][m]["std"] for n in names])
        bars = ax.bar(
            x,
            mean,
            yerr=std,
            capsize=4,
            color=[colors[n] for n in names],
            edgecolor="black",
            linewidth=0.6,
        )
        if m in best:
            bars[names.index(best[m])].set_linewidth(2.2)
        lo, hi = np.nanmin(mean - std), np.nanmax(mean + std)
        pad = 0.25 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-3)
        # zoomed axis: differences between methods are small next to the values themselves
        ax.set_ylim(max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad)
        for i, n in enumerate(names):
            label = f"{mean[i]:.3f}{cell_marker(tests, m, n)}"
            ax.text(i, mean[i] + std[i] + 0.04 * pad, label, ha="center", va="bottom", fontsize=8)
        arrow = "higher is better" if METRICS[m].higher_is_better else "lower is better"
        ax.set_title(f"{m} ({arrow})", fontsize=10)
        ax.set_xticks(
            x,
            names,
            rotation=30 if len(names) > 4 else 0,
            ha="right" if len(names) > 4 else "center",
        )
        ax.grid(axis="y", alpha=0.3)
    leaky = " — LEAKY protocol" if results.get("leaky") else ""
    fig.suptitle(
        f"{results['dataset']}: {results['protocol_description']}{leaky}\n"
        f"mean ± std over folds (seeds {results['seeds']}); thick edge = best of the metric\n"
        + MARKER_LEGEND.replace(" (Wilcoxon", "\n(Wilcoxon"),
        fontsize=9,
    )
    return _save(fig, path)


def plot_trial_distributions(
    results: Mapping[str, Any],
    preds: Mapping[str, MethodPredictions],
    seed: int,
    path: Path,
    n_trials: int = 4,
) -> tuple[Path, list[tuple[str, int]]]:
    names = list(preds)
    emotions = list(results["emotions"])
    colors = _colors(list(results["methods"]))
    trials = pick_trials(next(iter(preds.values())), seed, n_trials)
    fig = _figure(max(10.0, 0.9 * len(emotions) * (1 + 0.25 * len(names))), 2.6 * len(trials) + 0.8)
    axes = np.atleast_1d(fig.subplots(len(trials), 1, sharex=True))
    k = np.arange(len(emotions))
    width = 0.8 / (len(names) + 1)
    for ax, key in zip(axes, trials, strict=True):
        ref = next(iter(preds.values()))
        gt = _trial_mean(ref.target, ref, seed, key)
        ax.bar(k - 0.4 + width / 2, gt, width, color=GT_COLOR, label="ground truth")
        for j, name in enumerate(names):
            p = preds[name]
            mask = _trial_mask(p, seed, key)
            if not mask.any():
                continue
            ax.bar(
                k - 0.4 + width * (j + 1.5),
                p.pred[mask].mean(axis=0),
                width,
                color=colors[name],
                label=name,
            )
        fold = int(ref.fold[_trial_mask(ref, seed, key)][0])
        ax.set_title(
            f"subject {key[0]}, trial {key[1]} (test fold {fold}; mean over its windows)",
            fontsize=9,
            loc="left",
        )
        ax.set_ylabel("probability")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 8), fontsize=8)
    axes[-1].set_xticks(k, emotions, rotation=30, ha="right")
    fig.suptitle(f"Predicted vs. ground-truth emotion distributions, seed {seed}", fontsize=10)
    return _save(fig, path), trials


def plot_cooccurrence(
    gt: np.ndarray,
    mats: Mapping[str, np.ndarray],
    agreement: Mapping[str, float],
    emotions: Sequence[str],
    seed: int,
    path: Path,
) -> Path:
    panels = [("ground truth", gt), *mats.items()]
    cols = min(len(panels), 4)
    rows = int(np.ceil(len(panels) / cols))
    fig = _figure(3.4 * cols + 1.0, 3.4 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    from matplotlib import colormaps

    cmap = colormaps["RdBu_r"].with_extremes(bad="#bbbbbb")
    im = None
    for i, ax in enumerate(axes):
        if i >= len(panels):
            ax.set_axis_off()
            continue
        title, c = panels[i]
        masked = np.ma.masked_invalid(c)
        im = ax.imshow(masked, vmin=-1, vmax=1, cmap=cmap)
        if title != "ground truth":
            r = agreement.get(title, float("nan"))
            note = "constant output" if np.isnan(c).all() else f"pattern r = {r:.2f}"
            title = f"{title} ({note})"
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(emotions)), emotions, rotation=90, fontsize=7)
        ax.set_yticks(range(len(emotions)), emotions if i % cols == 0 else [], fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.7, label="Pearson correlation")
    fig.suptitle(
        f"Emotion co-occurrence over test windows (seed {seed}); grey = undefined (constant)",
        fontsize=10,
    )
    return _save(fig, path)


def plot_subject_scores(
    scores: Mapping[str, Mapping[str, Mapping[str, float]]], method_order: Sequence[str], path: Path
) -> tuple[Path, list[str]]:
    metrics = list(scores)
    names = [n for n in method_order if n in scores[metrics[0]]]
    colors = _colors(list(method_order))
    order = subject_difficulty(scores)
    fig = _figure(max(8.0, 0.22 * len(order) + 3), 3.0 * len(metrics) + 0.6)
    axes = np.atleast_1d(fig.subplots(len(metrics), 1, sharex=True))
    x = np.arange(len(order))
    for ax, m in zip(axes, metrics, strict=True):
        for name in names:
            y = [scores[m][name].get(s, np.nan) for s in order]
            ax.plot(x, y, "o-", ms=4, lw=0.8, alpha=0.9, color=colors[name], label=name)
        arrow = "higher is better" if METRICS[m].higher_is_better else "lower is better"
        ax.set_ylabel(f"{m}\n({arrow})", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncols=min(len(names), 6))
    axes[-1].set_xticks(x, order, rotation=90 if len(order) > 20 else 0, fontsize=8)
    axes[-1].set_xlabel("test subject (hardest first, by mean KL over methods)")
    fig.suptitle("Per-subject scores over that subject's test windows (all seeds)", fontsize=10)
    return _save(fig, path), order


def subject_difficulty(scores: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    """Subjects ordered hardest first: highest KL averaged over methods."""
    key = "kl" if "kl" in scores else next(iter(scores))
    sign = -1.0 if METRICS[key].higher_is_better else 1.0
    subjects = sorted({s for per in scores[key].values() for s in per})
    mean = {s: np.nanmean([per.get(s, np.nan) for per in scores[key].values()]) for s in subjects}
    return sorted(subjects, key=lambda s: -sign * mean[s])


# --------------------------------------------------------------------------- markdown
def _fmt_p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.1e}"


def report_markdown(
    results: Mapping[str, Any],
    tests: Mapping[str, Any],
    figures: Mapping[str, str],
    subject_scores: Mapping[str, Any] | None,
    subject_order: Sequence[str],
    agreement: Mapping[str, float],
    trials: Sequence[tuple[str, int]],
    skipped: Sequence[str] = (),
) -> str:
    names = list(results["methods"])
    best = best_per_metric(dict(results))
    arrow = {m: "↑" if METRICS[m].higher_is_better else "↓" for m in METRIC_NAMES}
    L: list[str] = [f"# affectkit report: {results['dataset']}", ""]
    if results.get("leaky"):
        L += [
            "> **LEAKY protocol.** These numbers come from the sample-random protocol: windows "
            "of one trial sit on both sides of the split, so they overstate what a method does "
            "on unseen trials or people. Do not compare them with subject-independent or "
            "subject-dependent numbers.",
            "",
        ]
    inv = results.get("last_invocation", {})
    L += [
        f"- Dataset: `{results['dataset']}`, {results['n_samples']} windows, "
        f"{len(results.get('subjects', []))} subjects, emotions: {', '.join(results['emotions'])}",
        f"- Protocol: {results['protocol_description']}"
        + (" — **LEAKY**" if results.get("leaky") else ""),
        f"- Seeds: {results['seeds']}; executor of the last invocation: {inv.get('executor', '?')}",
        f"- affectkit {results.get('affectkit_version')}, torch "
        f"{results.get('versions', {}).get('torch')}",
    ]
    partial = [n for n, r in results["methods"].items() if not r.get("complete", True)]
    if partial:
        L.append(
            "- **Incomplete:** "
            + ", ".join(
                f"{n} ({len(results['methods'][n]['folds'])}/"
                f"{results['methods'][n]['folds_expected']} folds)"
                for n in partial
            )
            + "; re-run the same `affectkit bench` command to finish them."
        )
    if skipped:
        L.append(
            "- **Left out of the figures and per-subject scores** (predictions unreadable; "
            "re-run `affectkit bench` with this --out to recompute them): " + "; ".join(skipped)
        )
    L += [
        "",
        "## Results",
        "",
        f"Mean ± std over folds (and seeds). Bold = best per column; {MARKER_LEGEND}.",
        "",
        "| method | " + " | ".join(f"{m} {arrow[m]}" for m in METRIC_NAMES) + " | folds |",
        "|---|" + "---|" * (len(METRIC_NAMES) + 1),
    ]
    for n in names:
        r = results["methods"][n]
        cells = []
        for m in METRIC_NAMES:
            s = r["summary"][m]
            cell = f"{s['mean']:.4f} ± {s['std']:.4f}{cell_marker(tests, m, n)}"
            cells.append(f"**{cell}**" if best.get(m) == n else cell)
        tag = " (leaky)" if results.get("leaky") else ""
        L.append(f"| {n}{tag} | " + " | ".join(cells) + f" | {len(r['folds'])} |")
    if "metrics" in figures:
        L += ["", f"![metric bars]({figures['metrics']})"]

    L += ["", "## Paired significance", ""]
    if len(names) < 2:
        L.append("One method only: nothing to compare.")
    else:
        n_folds = max((t["n_folds"] for t in tests.values()), default=0)
        L += [
            "Wilcoxon signed-rank test across folds (per fold, scores averaged over seeds) "
            "between the best method of each metric and every other method; p-values "
            "Holm-corrected over the comparisons of that metric.",
            "",
        ]
        floor = min((t["min_attainable_p"] for t in tests.values()), default=1.0)
        if floor >= 0.05:
            L += [
                f"> With {n_folds} paired folds the smallest p-value this test can give is "
                f"{floor:.3g}: no difference can reach p < .05 here. Use a protocol with more "
                "folds (e.g. leave-one-subject-out) to test differences.",
                "",
            ]
        L += [
            "| metric | best | vs. | mean difference | W | p | p (Holm) | |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m, t in tests.items():
            for other, res in t["tests"].items():
                diff = (
                    results["methods"][other]["summary"][m]["mean"]
                    - results["methods"][t["best"]]["summary"][m]["mean"]
                )
                L.append(
                    f"| {m} {arrow[m]} | {t['best']} | {other} | {diff:+.4f} | "
                    f"{res['statistic']:g} | {_fmt_p(res['p'])} | {_fmt_p(res['p_holm'])} | "
                    f"{res['marker']} |"
                )

    if "distributions" in figures:
        L += [
            "",
            "## Predicted vs. ground-truth distributions",
            "",
            "Test trials with different ground truths (the most peaked, then each time the one "
            "farthest from those shown): "
            + ", ".join(f"subject {s} trial {t}" for s, t in trials)
            + ".",
            "",
            f"![trial distributions]({figures['distributions']})",
        ]
    if "cooccurrence" in figures:
        L += [
            "",
            "## Emotion co-occurrence",
            "",
            "Pearson correlation between emotions over the test windows, ground truth and "
            "each method's predictions. *Pattern r* = correlation between the off-diagonal "
            "entries of the method's matrix and the ground truth's (1 = same co-occurrence "
            "structure; undefined for a method whose output does not vary).",
            "",
            "| method | pattern r vs. truth |",
            "|---|---|",
            *[f"| {n} | {'–' if np.isnan(a) else f'{a:.3f}'} |" for n, a in agreement.items()],
            "",
            f"![co-occurrence]({figures['cooccurrence']})",
        ]
    if subject_scores:
        shown = list(subject_order)[:20]
        cut = "; the 20 hardest shown" if len(subject_order) > 20 else ""
        metrics = list(subject_scores)
        methods = [n for n in names if n in subject_scores[metrics[0]]]
        L += [
            "",
            "## Per-subject scores",
            "",
            "Mean over each subject's test windows (all seeds), hardest subjects first "
            f"(highest KL averaged over methods){cut}. "
            "All subjects: `per_subject.csv`.",
            "",
            "| subject | "
            + " | ".join(f"{n} {m} {arrow[m]}" for m in metrics for n in methods)
            + " |",
            "|---|" + "---|" * (len(metrics) * len(methods)),
        ]
        for s in shown:
            cells = [
                f"{subject_scores[m][n].get(s, float('nan')):.4f}" for m in metrics for n in methods
            ]
            L.append(f"| {s} | " + " | ".join(cells) + " |")
        if "subjects" in figures:
            L += ["", f"![per-subject scores]({figures['subjects']})"]

    L += ["", "## Methods", ""]
    for n in names:
        r = results["methods"][n]
        L += [
            f"- **{n}**{' (leaky protocol)' if results.get('leaky') else ''}: config hash "
            f"`{r.get('config_hash')}`, tags {', '.join(r.get('tags', [])) or '–'}; "
            f"method `{_compact(r.get('method', {}))}`; train `{_compact(r.get('train', {}))}`",
        ]
    return "\n".join(L) + "\n"


def _compact(d: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(d), separators=(",", ":"))


def _subjects_csv(scores: Mapping[str, Any], order: Sequence[str]) -> str:
    import csv
    import io

    metrics = list(scores)
    methods = list(scores[metrics[0]])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["subject", *[f"{n}_{m}" for m in metrics for n in methods]])
    for s in order:
        w.writerow(
            [s, *[f"{scores[m][n].get(s, float('nan')):.6f}" for m in metrics for n in methods]]
        )
    return buf.getvalue()


def write_report(run_dir: str | Path, *, n_trials: int = 4) -> Path:
    """Write ``report.md``, ``per_subject.csv`` and ``figures/*.png`` into ``run_dir``."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    if not results.get("methods") or not any(r["folds"] for r in results["methods"].values()):
        raise UserError(f"{run_dir} holds no finished fold yet; nothing to report.")
    _figure(1, 1)  # fail early, with the install hint, when matplotlib is missing
    fig_dir = run_dir / "figures"
    tests = paired_tests(results)
    skipped: list[str] = []
    preds = collect_predictions(run_dir, results, skipped)
    seed = int(results["seeds"][0])
    figures: dict[str, str] = {}
    plot_metric_bars(results, tests, fig_dir / "metrics.png")
    figures["metrics"] = "figures/metrics.png"
    trials: list[tuple[str, int]] = []
    agreement: dict[str, float] = {}
    scores: dict[str, Any] | None = None
    order: list[str] = []
    if preds:
        _, trials = plot_trial_distributions(
            results, preds, seed, fig_dir / "distributions.png", n_trials
        )
        figures["distributions"] = "figures/distributions.png"
        gt, mats, agreement = cooccurrence(preds, seed)
        if gt is not None:
            plot_cooccurrence(
                gt, mats, agreement, results["emotions"], seed, fig_dir / "cooccurrence.png"
            )
            figures["cooccurrence"] = "figures/cooccurrence.png"
        scores = per_subject_scores(preds)
        _, order = plot_subject_scores(scores, list(results["methods"]), fig_dir / "subjects.png")
        figures["subjects"] = "figures/subjects.png"
        write_text(run_dir / "per_subject.csv", _subjects_csv(scores, order))
    md = report_markdown(results, tests, figures, scores, order, agreement, trials, skipped)
    return write_text(run_dir / "report.md", md)


# --------------------------------------------------------------------------- sweeps
SWEEP_METRICS = ("kl", "intersection")


@dataclass
class SweepCurve:
    """One sweep's numbers: per method, per point (and per reference), mean and fold-std."""

    key: str
    values: list[Any]
    points: list[dict[str, Any]]  # results.json of each value ({} where not run yet)
    references: dict[str, dict[str, Any]]  # reference protocol -> its results.json
    methods: list[str]

    def cell(self, results: Mapping[str, Any], method: str, metric: str) -> tuple[float, float]:
        r = results.get("methods", {}).get(method)
        if not r or not r.get("folds"):
            return float("nan"), float("nan")
        s = r["summary"][metric]
        return float(s["mean"]), float(s["std"])

    def calibration_windows(self, results: Mapping[str, Any]) -> float:
        """Mean calibration windows per test subject (recorded in every fold's fit_info)."""
        counts = [
            n
            for r in results.get("methods", {}).values()
            for f in r.get("folds", [])
            for n in f.get("fit_info", {}).get("calibration_windows", {}).values()
        ]
        return float(np.mean(counts)) if counts else float("nan")


def load_sweep(sweep_dir: str | Path) -> SweepCurve:
    from .sweep import SWEEP_FILE

    sweep_dir = Path(sweep_dir)
    try:
        meta = load_json(sweep_dir / SWEEP_FILE)
    except (FileNotFoundError, DamagedFile):
        raise UserError(
            f"{sweep_dir / SWEEP_FILE} is missing or unreadable: {sweep_dir} is not the --out "
            "folder of an `affectkit bench --sweep` run."
        ) from None

    def read(name: str) -> dict[str, Any]:
        try:
            return load_results(sweep_dir / name)
        except UserError:
            return {}  # a point not run yet (or killed before its first fold): an empty column

    points = [read(d) for d in meta["points"]]
    refs = {p: read(d) for p, d in meta.get("references", {}).items()}
    methods: list[str] = []
    for r in [*points, *refs.values()]:
        methods += [m for m in r.get("methods", {}) if m not in methods]
    if not methods:
        raise UserError(f"{sweep_dir}: no run of the sweep has a finished fold yet.")
    return SweepCurve(meta["key"], list(meta["values"]), points, refs, methods)


def _ref_label(protocol: str, results: Mapping[str, Any]) -> str:
    tag = " (transductive)" if results.get("transductive") else ""
    return protocol + (" (leaky)" if results.get("leaky") else tag)


def gap_closed(independent: float, dependent: float, value: float, metric: str) -> float:
    """Share of the gap between the subject-independent and subject-dependent scores that
    ``value`` closes (0 = no better than independent, 1 = as good as dependent)."""
    if not np.isfinite([independent, dependent, value]).all() or independent == dependent:
        return float("nan")
    return (value - independent) / (dependent - independent) + 0.0  # no "-0%"


def sweep_markdown(curve: SweepCurve) -> str:
    leaf = curve.key.rsplit(".", 1)[-1]
    first = next((p for p in curve.points if p), {})
    lines = [
        f"# Sweep of `{curve.key}`: {first.get('dataset', '?')}",
        "",
        f"Protocol of the sweep: {first.get('protocol_description', '?')} (at "
        f"{leaf}={curve.values[curve.points.index(first)] if first else '?'}). "
        f"Seeds: {first.get('seeds', '?')}. Mean ± std over folds; best per column in bold.",
        "",
    ]
    refs = list(curve.references)
    si, sd = curve.references.get("subject-independent"), curve.references.get("subject-dependent")
    # columns: (label, results, calibration windows per test subject or None)
    cols = [(_ref_label(p, curve.references[p]), curve.references[p], None) for p in refs[:1]]
    cols += [
        (f"{leaf}={v}", p, curve.calibration_windows(p))
        for v, p in zip(curve.values, curve.points, strict=True)
    ]
    cols += [(_ref_label(p, curve.references[p]), curve.references[p], None) for p in refs[1:]]
    for metric in SWEEP_METRICS:
        hib = METRICS[metric].higher_is_better
        lines += [f"## {metric} ({'higher' if hib else 'lower'} is better)", ""]
        lines.append("| method | " + " | ".join(c for c, _, _ in cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        best = {}
        for c, r, _ in cols:
            vals = {m: curve.cell(r, m, metric)[0] for m in curve.methods}
            vals = {m: v for m, v in vals.items() if np.isfinite(v)}
            if vals:
                best[c] = (max if hib else min)(vals, key=vals.get)
        for m in curve.methods:
            cells = []
            for c, r, _ in cols:
                mean, std = curve.cell(r, m, metric)
                text = "—" if not np.isfinite(mean) else f"{mean:.4f} ± {std:.4f}"
                text = f"**{text}**" if best.get(c) == m else text
                cells.append(text + _unfinished(r, m))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if any(w is not None and np.isfinite(w) for _, _, w in cols):
            cells = ["" if w is None or not np.isfinite(w) else f"{w:.1f}" for _, _, w in cols]
            lines.append("| *calibration windows per test subject* | " + " | ".join(cells) + " |")
        lines.append("")
        if si and sd:
            lines += _gap_table(curve, metric, si, sd, leaf)
        lines += _near_best(curve, metric, leaf)
    return "\n".join(lines)


def _unfinished(results: Mapping[str, Any], method: str) -> str:
    """`` (k/n folds)`` for a method whose run is not complete yet, else nothing."""
    r = results.get("methods", {}).get(method)
    if not r or r.get("complete", True):
        return ""
    return f" ({len(r['folds'])}/{r.get('folds_expected', '?')} folds)"


def _gap_table(curve: SweepCurve, metric: str, si, sd, leaf: str) -> list[str]:
    lines = [
        f"Share of each method's own {metric} gap between subject-independent and "
        "subject-dependent that calibration closes:",
        "",
        "| method | " + " | ".join(f"{leaf}={v}" for v in curve.values) + " |",
        "|---" * (len(curve.values) + 1) + "|",
    ]
    for m in curve.methods:
        lo, hi = curve.cell(si, m, metric)[0], curve.cell(sd, m, metric)[0]
        shares = [gap_closed(lo, hi, curve.cell(p, m, metric)[0], metric) for p in curve.points]
        cells = ["—" if not np.isfinite(s) else f"{s:.0%}" for s in shares]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _near_best(curve: SweepCurve, metric: str, leaf: str) -> list[str]:
    """Per point, the methods whose mean lies within their own fold-std of the best."""
    hib = METRICS[metric].higher_is_better
    out = [f"Within one fold-std of the best {metric}:", ""]
    for v, p in zip(curve.values, curve.points, strict=True):
        cells = {m: curve.cell(p, m, metric) for m in curve.methods}
        cells = {m: c for m, c in cells.items() if np.isfinite(c[0])}
        if not cells:
            continue
        best = (max if hib else min)(c[0] for c in cells.values())
        near = [m for m, (mean, std) in cells.items() if abs(mean - best) <= std]
        out.append(f"- {leaf}={v}: {', '.join(near)}")
    return [*out, ""]


def plot_sweep(curve: SweepCurve, path: Path) -> Path:
    """KL and intersection against the swept value, one line per method; the reference
    protocols as horizontal lines in the method's colour (dashed, dotted, ...)."""
    colors = _colors(curve.methods)
    styles = ["--", ":", "-.", (0, (1, 3))]
    fig = _figure(11.0, 4.6)
    axes = fig.subplots(1, len(SWEEP_METRICS))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in curve.values)
    # a sweep over names (e.g. protocol.adapt) gets evenly spaced, labelled positions
    x = np.array([float(v) for v in curve.values]) if numeric else np.arange(len(curve.values))
    leaf = curve.key.rsplit(".", 1)[-1]
    for ax, metric in zip(axes, SWEEP_METRICS, strict=True):
        for m in curve.methods:
            y = np.array([curve.cell(p, m, metric)[0] for p in curve.points])
            ax.plot(x, y, marker="o", color=colors[m], label=m, linewidth=1.6)
            for r, ls in zip(curve.references.values(), styles, strict=False):
                level = curve.cell(r, m, metric)[0]
                if np.isfinite(level):
                    ax.axhline(level, color=colors[m], linestyle=ls, linewidth=0.8, alpha=0.7)
        arrow = "higher is better" if METRICS[metric].higher_is_better else "lower is better"
        ax.set_title(f"{metric} ({arrow})", fontsize=10)
        ax.set_xlabel(leaf)
        if not numeric:
            ax.set_xticks(x, [str(v) for v in curve.values])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=2)
    refs = ", ".join(
        f"{_ref_label(p, r)} {'dashed' if i == 0 else 'dotted' if i == 1 else 'other'}"
        for i, (p, r) in enumerate(curve.references.items())
    )
    first = next((p for p in curve.points if p), {})
    fig.suptitle(
        f"{first.get('dataset', '')}: mean over folds and seeds {first.get('seeds', '')}"
        + (f"; reference levels: {refs}" if refs else ""),
        fontsize=9,
    )
    return _save(fig, path)


def write_sweep_report(sweep_dir: str | Path) -> Path:
    """Write ``sweep.md`` (always) and ``figures/sweep.png`` (when matplotlib is
    installed) into a ``bench --sweep`` directory; returns the markdown's path."""
    import importlib.util

    sweep_dir = Path(sweep_dir)
    curve = load_sweep(sweep_dir)
    md = sweep_markdown(curve)
    if importlib.util.find_spec("matplotlib") is not None:
        plot_sweep(curve, sweep_dir / "figures" / "sweep.png")
        md += "\n![calibration curve](figures/sweep.png)\n"
    else:
        md += "\n(Install matplotlib, `pip install 'affectkit[plots]'`, for the figure.)\n"
    return write_text(sweep_dir / "sweep.md", md)
