"""Bad WESAD input stops with exit code 2 and a message naming the file; pickles run no code."""

import os
import pickle

import fake_wesad as fw
import numpy as np
import pytest
from affectkit_datasets.safe_pickle import load_data_pickle

from affectkit.errors import UserError


def bench(run_cli, root, tmp_path, *extra):
    return run_cli(
        "bench",
        "--method",
        "prior",
        "--dataset",
        "wesad",
        "--data-dir",
        root,
        "--out",
        tmp_path / "run",
        "--set",
        "dataset.workers=1",
        *extra,
    )


@pytest.fixture
def root(tmp_path):
    return fw.write_dataset(tmp_path / "data")


def _expect(code, text, *fragments):
    assert code == 2, text
    assert "Traceback" not in text
    for f in fragments:
        assert f in text, (f, text)


def test_missing_subject_folder(root, tmp_path, run_cli):
    code, text = bench(run_cli, root, tmp_path, "--set", "dataset.subjects=[S2,S99]")
    _expect(
        code,
        text,
        f"WESAD subject folder {root / 'S99'} does not exist",
        "folders in",
        "Fix dataset.subjects",
    )


def test_truncated_csv(root, tmp_path, run_cli):
    path = root / "S2" / "S2_E4_Data" / "BVP.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[: len(lines) // 3]) + "\n")
    kept = len(lines) // 3 - 2  # sample lines after the two header lines
    code, text = bench(run_cli, root, tmp_path)
    _expect(
        code,
        text,
        f"{path} holds {kept} samples",
        f"BVP is {fw.DURATION - kept / fw.FS['BVP']:.0f} s shorter than EDA",
        "the file is likely truncated",
        "Replace it",
    )


def test_missing_csv(root, tmp_path, run_cli):
    path = root / "S2" / "S2_E4_Data" / "EDA.csv"
    path.unlink()
    code, text = bench(run_cli, root, tmp_path)
    _expect(code, text, f"{path} not found", "Copy EDA.csv")


def test_ragged_acc_row(root, tmp_path, run_cli):
    path = root / "S2" / "S2_E4_Data" / "ACC.csv"
    text = path.read_text()
    path.write_text(text[: len(text) // 2].rsplit(",", 1)[0] + "\n")  # cut inside a row
    code, out = bench(run_cli, root, tmp_path)
    _expect(code, out, str(path), "truncated or malformed")


def test_quest_without_panas_rows(root, tmp_path, run_cli):
    path = root / "S2" / "S2_quest.csv"
    path.write_text(fw.quest_text("S2", panas_rows=False))
    code, text = bench(run_cli, root, tmp_path)
    _expect(code, text, str(path), "has 0 PANAS row(s)", "one '# PANAS' row for each")


def test_e4_layout_without_alignment(root, tmp_path, run_cli):
    (root / "e4_alignment.csv").unlink()
    code, text = bench(run_cli, root, tmp_path)
    _expect(
        code, text, f"{root / 'e4_alignment.csv'} not found", "e4_seconds_at_quest_t0", "SX/SX.pkl"
    )


def test_alignment_of_another_recording(root, tmp_path, run_cli):
    path = root / "e4_alignment.csv"
    path.write_text(path.read_text().replace(f"{fw.START_UNIX:.6f}", "1400000000.000000"))
    code, text = bench(run_cli, root, tmp_path)
    _expect(code, text, "belongs to another recording")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_before_it_runs(tmp_path, run_cli):
    root = tmp_path / "data"
    fw.write_subject(root, "S2", layout="pkl")
    marker = tmp_path / "pwned"
    pkl = root / "S2" / "S2.pkl"
    pkl.write_bytes(pickle.dumps({"signal": _Evil(marker), "label": np.zeros(3)}, protocol=2))
    code, text = bench(run_cli, root, tmp_path)
    _expect(code, text, str(pkl), "system, which is not plain data", "could run arbitrary code")
    assert not marker.exists()


def test_restricted_unpickler_admits_plain_data_only(tmp_path):
    plain = {
        "a": [1, 2.5, "x", (3, None)],
        "arr": np.arange(6, dtype=np.int16).reshape(2, 3),
        "f": np.float32(1.5),
        "b": b"\x00\xff",
    }
    for protocol in (2, 4, 5):
        path = tmp_path / f"ok{protocol}.pkl"
        path.write_bytes(pickle.dumps(plain, protocol=protocol))
        back = load_data_pickle(path)
        np.testing.assert_array_equal(back["arr"], plain["arr"])
        assert back["a"] == plain["a"] and back["f"] == 1.5 and back["b"] == plain["b"]
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps(np.array([1, "x"], dtype=object)))
    with pytest.raises(UserError, match=r"obj\.pkl is not a readable plain-data pickle"):
        load_data_pickle(path)
    path.write_bytes(pickle.dumps({"c": pickle.Pickler}))
    with pytest.raises(UserError, match=r"asks to load _pickle\.Pickler"):
        load_data_pickle(path)
