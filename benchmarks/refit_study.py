"""The refit after early stopping, kept or dropped, on validation subjects only (issue 18).

With ``train.refit`` (the loop's default) a method that stopped early on the protocol's
validation split is trained again, from the same initialisation, for the selected number of
epochs on fit + validation: the hold-out costs no training data, and the fold costs a
second training run. This study scores both settings of one method on inner validation
splits (``benchmarks/inner_validation.py``: test subjects and test windows never read).

Run: ``python -m benchmarks.refit_study --method helo --only synthetic,wesad-si,wesad-sd``;
results go to ``benchmarks/results/refit-<method>.md`` (+ ``.json``).

The outcome for every neural method, and the rule that keeps the refit on for all of them:
docs/training.md (Refit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.inner_validation import Study
from benchmarks.inner_validation import main as run_study


def study(method: str) -> Study:
    return Study(
        name=f"refit-{method}",
        method=method,
        title=f"{method}: refit after early stopping or not, scored on validation subjects only",
        variants={"refit": ["train.refit=true"], "no refit": ["train.refit=false"]},
        command=f"python -m benchmarks.refit_study --method {method}",
        about="`refit`: the selection run, then the selected epochs again on fit + "
        "validation; `no refit`: the selection run's best weights (and shrinkage) are the "
        "model.",
        runs=Path(f"runs/refit-{method}"),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--method", default="helo")
    known, rest = ap.parse_known_args(argv)
    return run_study(study(known.method), rest)


if __name__ == "__main__":
    sys.exit(main())
