"""The committed perf results, and what benchmarks/perf.py writes, name no machine's paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import perf

RESULTS = Path(perf.__file__).parent / "results"
# a POSIX path from the root (/work/..., /home/...) or a Windows drive path (C:\...)
ABSOLUTE = re.compile(r"(?<![\w.~])/(?:[\w.-]+/)+[\w.-]+|\b[A-Za-z]:\\")


@pytest.mark.parametrize(
    "path", sorted(RESULTS.glob("perf-cpu*.md")) + sorted(RESULTS.glob("perf-cpu*.json")), ids=str
)
def test_committed_perf_results_hold_no_absolute_path(path):
    assert path.is_file()
    assert ABSOLUTE.findall(path.read_text()) == []


def test_dataset_paths_are_recorded_relative_to_the_repository(tmp_path):
    data_dir = perf.ROOT.parent / "shared" / "data" / "wesad-wrist"
    assert perf.portable({"data_dir": str(data_dir), "subjects": 3}) == {
        "data_dir": "../shared/data/wesad-wrist",
        "subjects": 3,
    }
    elsewhere = perf.portable({"data_dir": str(tmp_path / "w")})["data_dir"]
    assert not Path(elsewhere).is_absolute() and elsewhere.endswith("/w")
    report = {
        "machine": {"cpu": "x", "cores": 1, "torch_threads": 1, "torch": "t", "python": "p"},
        "date": "d",
        "batches": [8],
        "methods": [],
        "datasets": [
            {
                "dataset": "wesad",
                "config": perf.portable({"data_dir": str(data_dir)}),
                "windows": 1,
                "build_seconds": 0.0,
                "cached_load_seconds": 0.0,
            }
        ],
        "runs": [],
    }
    md = perf.to_markdown(report)
    assert "../shared/data/wesad-wrist" in md and ABSOLUTE.findall(md) == []


def test_the_report_states_the_machine_speed_it_was_measured_at():
    speed = perf.machine_speed(seconds=0.01)
    assert set(speed) == {"sgemm_gflops", "add_gbps", "op_us"}
    assert all(0 < v < 1e5 for v in speed.values())
    report = {
        "machine": {"cpu": "x", "cores": 2, "torch_threads": 1, "torch": "t", "python": "p"},
        "date": "d",
        "batches": [8],
        "methods": [],
        "datasets": [],
        "runs": [],
    }
    assert "Machine speed" not in perf.to_markdown(report)  # older reports have none
    report["machine"]["speed"] = {"sgemm_gflops": 71.2, "add_gbps": 9.5, "op_us": 3.6}
    md = perf.to_markdown(report)
    assert "sgemm 71 GFLOP/s" in md and "9.5 GB/s" in md and "3.6 µs" in md
