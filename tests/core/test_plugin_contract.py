"""The plugin contract of CONTRIBUTING.md, checked against the code.

- mpcl builds every fusion as ``factory(config, dim=..., auxiliary=[names])``;
- the TorchMethod example of CONTRIBUTING.md runs as printed;
- the second example plugin, ``tests/example_plugin_csv`` (``csv-windows`` reader and
  ``gated-mean`` fusion), reads its documented layout, rejects bad files with a message
  naming file, line and column (``test_plugins.py`` installs it and benchmarks mpcl with
  it, as it does ``tests/example_plugin``).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from affectkit import Fusion, TrainConfig, UserError, hookimpl, plugins
from affectkit.plugins import PluginManager

REPO = Path(__file__).resolve().parents[2]
CSV_EXAMPLE = REPO / "tests" / "example_plugin_csv"


@pytest.fixture
def with_plugin(monkeypatch):
    """``with_plugin(module, name)``: the process-wide registry plus one inline plugin."""

    def add(module: types.ModuleType, name: str):
        from affectkit import builtins

        # first-party entry points only: an installed copy of the plugin must not clash
        monkeypatch.setenv("AFFECTKIT_LOAD_PLUGINS", "datasets,baselines,mpcl")
        mgr = PluginManager()
        mgr.add_plugin(builtins, "affectkit-core", "affectkit")
        mgr.load_entry_points()
        mgr.add_plugin(module, name, f"dist-{name}")
        monkeypatch.setattr(plugins, "_MANAGER", mgr)
        return mgr.registry

    return add


# --------------------------------------------------------------------------- fusion contract
def test_mpcl_gives_any_fusion_the_auxiliary_names(with_plugin, tiny_dataset):
    calls: list[dict] = []
    seen: list[list[str]] = []

    class Spy(Fusion):
        def __init__(self, **kwargs):
            super().__init__()
            self.proj = torch.nn.Linear(kwargs["dim"], kwargs["dim"])

        def forward(self, primary, auxiliary):
            seen.append(list(auxiliary))
            return self.proj(primary)

    def build_spy(config, **kwargs):
        calls.append(kwargs)
        return Spy(**kwargs)

    mod = types.ModuleType("spy")
    mod.affectkit_register = hookimpl(
        lambda registry: registry.register("fusion", "spy", build_spy)
    )
    registry = with_plugin(mod, "spy")
    method = registry.get("method", "mpcl").build(
        {"dim": 16, "fusion": {"name": "spy"}},
        spec=tiny_dataset.spec,
        train=TrainConfig(batch_size=32),
        seed=0,
        device="cpu",
    )
    method.model = method.build_model()
    # synthetic: eeg is the primary; the other physiological modalities are auxiliary
    assert calls == [{"dim": 16, "auxiliary": ["gsr", "ppg"]}]
    batch = {m: torch.from_numpy(x[:8]) for m, x in tiny_dataset.modalities.items()}
    assert method.model(batch).shape == (8, len(tiny_dataset.emotions))
    assert seen == [["gsr", "ppg"]]  # forward receives exactly the names it was built with


# --------------------------------------------------------------------------- docs example
def _doc_block(marker: str, lang: str = "python") -> str:
    """The code block that follows ``<!-- marker -->`` in CONTRIBUTING.md."""
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- {re.escape(marker)} -->\s*```{lang}\n(.*?)```", text, re.S)
    assert found, f"CONTRIBUTING.md has no {lang} block after <!-- {marker} -->"
    return found.group(1)


def test_contributing_torch_method_example_runs(with_plugin, tmp_path, run_cli):
    mod = types.ModuleType("doc_example")
    exec(compile(_doc_block("example: TorchMethod"), "CONTRIBUTING.md", "exec"), mod.__dict__)
    registry = with_plugin(mod, "doc_example")
    assert ("method", "softmax-regression") in registry
    out = tmp_path / "run"
    code, text = run_cli(
        "bench", "--method", "softmax-regression", "--set", "dataset.subjects=4",
        "--set", "dataset.trials=8", "--set", "dataset.windows=6", "--out", out,
    )  # fmt: skip
    assert code == 0, text
    res = json.loads((out / "results.json").read_text())
    folds = res["methods"]["softmax-regression"]["folds"]
    assert len(folds) == 4 and all(np.isfinite(f["metrics"]["kl"]) for f in folds)
    assert res["methods"]["softmax-regression"]["train"]["batch_size"] == 64  # train_defaults


def test_contributing_shows_the_example_fusion_as_it_is():
    code = (CSV_EXAMPLE / "affectkit_csvexample" / "fusion.py").read_text(encoding="utf-8")
    assert _doc_block("example: gated-mean fusion") in code


# --------------------------------------------------------------------------- CSV example
@pytest.fixture
def csv_plugin(monkeypatch, with_plugin):
    monkeypatch.syspath_prepend(str(CSV_EXAMPLE))
    import affectkit_csvexample

    return with_plugin(affectkit_csvexample, "csvexample")


def _read(registry, folder: Path, **cfg):
    entry = registry.get("dataset", "csv-windows")
    return entry.build(entry.config_cls(data_dir=folder, **cfg), data_dir=folder).load()


def _export(registry, data, folder: Path) -> list[Path]:
    return registry.get("dataset", "csv-windows").factory.export(data, folder)


def _rewrite(path: Path, edit) -> None:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    edit(rows)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def _set_cell(column: str, line: int, value: str):
    def edit(rows):  # rows[0] is line 1, the header
        rows[line - 1][rows[0].index(column)] = value

    return edit


def test_csv_reader_reads_the_documented_example(csv_plugin, tmp_path):
    (tmp_path / "s01.csv").write_text(_doc_block("example: csv-windows file", "csv"))
    data = _read(csv_plugin, tmp_path, behavioral=["face"], overlap_windows=1)
    assert {m: a.shape for m, a in data.modalities.items()} == {
        "gsr": (2, 2),
        "ppg": (2, 1),
        "face": (2, 1),
    }
    assert data.groups == {"gsr": "physiological", "ppg": "physiological", "face": "behavioral"}
    assert data.emotions == ["happy", "sad"] and data.subjects == ["s01"]
    np.testing.assert_allclose(data.targets, [[0.8, 0.2], [0.8, 0.2]], rtol=1e-6)
    assert data.window.tolist() == [0, 1] and data.info["overlap_windows"] == 1


def test_csv_export_round_trip(csv_plugin, tmp_path, tiny_dataset):
    paths = _export(csv_plugin, tiny_dataset, tmp_path / "data")
    assert [p.name for p in paths] == [f"{s}.csv" for s in tiny_dataset.subjects]
    # column order may differ between files
    _rewrite(paths[1], lambda rows: rows.__setitem__(slice(None), [r[::-1] for r in rows]))
    back = _read(csv_plugin, tmp_path / "data", behavioral=["behavioral"])
    for name in ("subject", "trial", "window"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tiny_dataset, name))
    for m, x in tiny_dataset.modalities.items():  # float32 values come back exactly, flat
        np.testing.assert_array_equal(back.modalities[m], x.reshape(len(x), -1))
    np.testing.assert_allclose(back.targets, tiny_dataset.targets, rtol=1e-6, atol=1e-9)
    assert back.groups == tiny_dataset.groups and back.emotions == tiny_dataset.emotions
    with pytest.raises(UserError, match="cannot create"):
        _export(csv_plugin, tiny_dataset, paths[0] / "sub")


@pytest.fixture
def csv_folder(csv_plugin, tmp_path, tiny_dataset) -> Path:
    _export(csv_plugin, tiny_dataset, tmp_path / "data")
    return tmp_path / "data"


def test_csv_reader_imputes_only_when_asked(csv_plugin, csv_folder):
    _rewrite(csv_folder / "3.csv", _set_cell("gsr.1", 4, ""))
    with pytest.raises(UserError, match=r"3\.csv, line 4, column 'gsr\.1'.*dataset\.missing"):
        _read(csv_plugin, csv_folder)
    data = _read(csv_plugin, csv_folder, missing="impute")
    i = int(np.flatnonzero((data.subject == "3") & (data.trial == 0) & (data.window == 2))[0])
    assert np.isnan(data.modalities["gsr"][i, 1]) and data.missing == "impute"


def _zero_ratings(rows):
    for j, column in enumerate(rows[0]):
        if column.startswith("rating."):
            rows[4][j] = "0"


BAD_CSV = {
    "not a number": (_set_cell("ppg.0", 3, "fast"), r"2\.csv, line 3, column 'ppg\.0'.*'fast'"),
    "negative rating": (_set_cell("rating.upset", 2, "-1"), r"line 2, column 'rating\.upset'"),
    "all ratings 0": (_zero_ratings, r"2\.csv, line 5: every rating is 0"),
    "duplicate window": (_set_cell("window", 3, "0"), r"line 3: trial 0, window 0.*line 2"),
    "wrong subject": (_set_cell("subject", 2, "9"), r"line 2, column 'subject': '9'.*'2'"),
    "bad trial": (_set_cell("trial", 6, "1.5"), r"line 6, column 'trial'.*integer"),
    "short row": (lambda rows: rows[6].pop(), r"2\.csv, line 7: \d+ cells"),
    "other columns": (
        lambda rows: rows[0].__setitem__(rows[0].index("gsr.27"), "gsr.x"),
        r"2\.csv has other columns.*missing \['gsr\.27'\], extra \['gsr\.x'\]",
    ),
}


@pytest.mark.parametrize("case", BAD_CSV, ids=str)
def test_csv_reader_names_file_line_and_column(csv_plugin, csv_folder, case):
    edit, pattern = BAD_CSV[case]
    _rewrite(csv_folder / "2.csv", edit)
    with pytest.raises(UserError, match=pattern):
        _read(csv_plugin, csv_folder, behavioral=["behavioral"])


def test_csv_reader_rejects_bad_folders(csv_plugin, csv_folder, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        _read(csv_plugin, tmp_path / "nowhere")
    with pytest.raises(UserError, match=r"no \.csv files"):
        _read(csv_plugin, tmp_path)
    with pytest.raises(UserError, match=r"dataset\.behavioral names \['video'\]"):
        _read(csv_plugin, csv_folder, behavioral=["video"])
    shutil.copy(csv_folder / "1.csv", csv_folder / "01.csv")
    with pytest.raises(UserError, match=r"01\.csv and 1\.csv name the same subject"):
        _read(csv_plugin, csv_folder)
    for p in csv_folder.glob("*.csv"):
        p.unlink()
    (csv_folder / "s1.csv").write_bytes(b"subject,trial,window,gsr.a,rating.x\ns1,0,0,\xff,1\n")
    with pytest.raises(UserError, match=r"s1\.csv is not UTF-8"):
        _read(csv_plugin, csv_folder)
    (csv_folder / "s1.csv").write_text("subject,trial,window,gsr,rating.x\ns1,0,0,1,1\n")
    with pytest.raises(UserError, match=r"column 'gsr' is neither"):
        _read(csv_plugin, csv_folder)


def test_gated_mean_fusion_contract(csv_plugin):
    torch.manual_seed(0)
    fusion = csv_plugin.build("fusion", "gated-mean", dim=8, auxiliary=["gsr", "face"])
    primary = torch.randn(5, 3, 8)
    aux = {"gsr": torch.randn(5, 4, 8), "face": torch.randn(5, 2, 8)}
    out = fusion(primary, aux)
    assert out.shape == primary.shape
    out.square().sum().backward()
    for m in ("gsr", "face"):  # each named modality has its own, trained weights
        assert fusion.gate[m].weight.grad.abs().sum() > 0
        assert fusion.value[m].weight.grad.abs().sum() > 0
    fusion.eval()
    changed = dict(aux, gsr=aux["gsr"] + 1.0)
    assert not torch.allclose(fusion(primary, aux), fusion(primary, changed))
    assert torch.equal(fusion(primary, {}), primary)  # no auxiliary: identity
    with pytest.raises(ValueError, match="built for auxiliary modalities"):
        fusion(primary, {"ppg": aux["gsr"]})
