"""Smaller mpcl models: step cost against the score on validation subjects only (issue 18).

Each variant (a set of ``--set`` overrides of mpcl's defaults) is scored on inner
validation splits by the engine in ``benchmarks/inner_validation.py`` (test subjects and test
windows never read). ``--timing`` adds each variant's training step at batch 1024 against
mlp's on DMER shapes (1 and 2 threads, interleaved, best of the steps) to the table; run it
on an idle machine.

Run: ``python -m benchmarks.mpcl_size --only synthetic,wesad-si,wesad-sd --seeds 0,1,2``;
results go to ``benchmarks/results/mpcl-size.md`` (+ ``.json``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.inner_validation import Study
from benchmarks.inner_validation import main as run_study

#: variant -> overrides of mpcl's defaults; the first is the reference
VARIANTS: dict[str, list[str]] = {
    "d32 P4": ["method.dim=32", "method.head.per_emotion=4"],
    "d32 P2": ["method.dim=32", "method.head.per_emotion=2"],
    "d24 P2": ["method.dim=24", "method.head.per_emotion=2"],
    "d24 P4": ["method.dim=24", "method.head.per_emotion=4"],
}
STUDY = Study(
    name="mpcl-size",
    method="mpcl",
    title="mpcl: smaller models, scored on validation subjects only",
    variants=VARIANTS,
    command="python -m benchmarks.mpcl_size",
    about="Variants of mpcl's width d (`method.dim`) and prototypes per emotion P "
    "(`method.head.per_emotion`).",
    runs=Path("runs/mpcl-size"),
)


def step_times(variants: dict[str, list[str]], batch: int, threads: int, rounds: int = 12):
    """Best-of-``rounds`` training step (ms) of each variant and of mlp, interleaved (the step
    of benchmarks/perf.py, on DMER-shaped random batches)."""
    import torch

    from benchmarks.perf import build_dmer_method, training_step

    torch.set_num_threads(threads)
    steppers = {
        name: training_step(build_dmer_method(method, "cpu", overrides=over), batch)
        for name, method, over in [
            *((v, "mpcl", o) for v, o in variants.items()),
            ("mlp", "mlp", []),
        ]
    }
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for _ in range(rounds):
        for k, step in steppers.items():
            t0 = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * min(v[2:]) for k, v in times.items()}


def timing_table(variants: dict[str, list[str]]) -> tuple[list[str], dict[int, Any]]:
    """Markdown lines and payload of the variants' steps at batch 1024 on 1 and 2 threads."""
    timing = {t: step_times(variants, 1024, t) for t in (1, 2)}
    lines = ["## Training step at batch 1024, DMER shapes (ms, best of the steps)", ""]
    lines += ["| variant | " + " | ".join(f"{t} thread(s)" for t in timing) + " |"]
    lines += ["|---|" + "---|" * len(timing)]
    for v in [*variants, "mlp"]:
        cells = [f"{t[v]:.1f} ({t[v] / t['mlp']:.2f}x mlp)" for t in timing.values()]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return [*lines, ""], timing


def main(argv: list[str] | None = None) -> int:
    return run_study(STUDY, argv, extra=timing_table, extra_flag="timing")


if __name__ == "__main__":
    sys.exit(main())
