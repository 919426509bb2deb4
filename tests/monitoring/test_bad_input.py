"""Real-world defects in E4 recordings: each has one defined result, never a traceback and
never a wrong time axis (docs/monitoring.md, "Bad input")."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from fake_e4 import FS, START, signals, write_session

import affectkit


def predict(run_cli, checkpoint, folder, out, *extra):
    code, text = run_cli(
        "predict",
        "--checkpoint",
        checkpoint,
        "--dataset",
        "e4",
        "--data-dir",
        folder,
        "--out",
        out,
        "--no-cache",
        *extra,
    )
    rows = list(csv.DictReader(out.open())) if code in (0, None) else []
    return code, text, rows


def blank(folder, name, a_s, b_s):
    """Empty sample lines from a_s to b_s (the device sent nothing there)."""
    lines = (folder / f"{name}.csv").read_text().split("\n")
    fs = FS[name]
    for i in range(2 + int(a_s * fs), 2 + int(b_s * fs)):
        lines[i] = ""
    (folder / f"{name}.csv").write_text("\n".join(lines))


def test_gap_in_every_signal_skips_windows_and_keeps_the_time_axis(checkpoint, tmp_path, run_cli):
    folder = write_session(tmp_path / "s", 400)
    for name in FS:
        blank(folder, name, 150, 250)
    code, text, rows = predict(run_cli, checkpoint, folder, tmp_path / "p.csv")
    assert code in (0, None) and "Traceback" not in text
    assert "skipped, no signal at all" in text
    start = [float(r["start_s"]) for r in rows]
    # windows touching [150, 250) are gone; the others keep their times
    assert start == [t for t in np.arange(0, 341, 10.0) if t + 60 <= 150 or t >= 250]
    assert rows[-1]["start_wall"] == "2017-05-22T07:21:05.000+00:00"  # START + 340 s


def test_modality_dropout_is_imputed_and_flagged(checkpoint, tmp_path, run_cli):
    folder = write_session(tmp_path / "s", 400)
    blank(folder, "EDA", 120, 300)  # skin contact lost for three minutes
    code, text, rows = predict(run_cli, checkpoint, folder, tmp_path / "p.csv")
    assert code in (0, None)
    assert "gsr (EDA) missing in" in text and "imputed from the training statistics" in text
    for r in rows:
        start = float(r["start_s"])
        overlaps = start < 300 and start + 60 > 120
        assert r["imputed"] == ("gsr" if overlaps else "")
    assert len(rows) == 35  # none skipped
    # imputing = the training mean of gsr's features: the same as a window whose gsr
    # features are exactly the training means
    ckpt = affectkit.load(checkpoint)
    data = affectkit.datasets.load_dataset(
        affectkit.monitor.dataset_config(ckpt, "e4", folder, ["dataset.cache=false"]),
        use_cache=False,
    )
    i = next(k for k, r in enumerate(rows) if r["imputed"])
    assert np.isnan(data.modalities["gsr"][i]).all()
    data.modalities["gsr"][i] = ckpt.normalizer.mean["gsr"]
    np.testing.assert_allclose(
        ckpt.predict(data)[i], [float(rows[i][e]) for e in ckpt.emotions], rtol=1e-6
    )


def test_file_ending_early_is_a_dropout_to_the_end(checkpoint, tmp_path, run_cli):
    sig = signals(300)
    sig["TEMP"] = sig["TEMP"][: 200 * 4]
    folder = write_session(tmp_path / "s", 300, sig=sig)
    code, _, rows = predict(run_cli, checkpoint, folder, tmp_path / "p.csv")
    assert code in (0, None)
    assert [r["imputed"] for r in rows] == [
        "temp" if float(r["start_s"]) + 60 > 200 else "" for r in rows
    ]
    assert float(rows[-1]["start_s"]) == 240.0


def test_header_in_another_timezone_exits_2_naming_the_file(checkpoint, tmp_path, run_cli):
    folder = write_session(tmp_path / "s", 130, starts={"EDA": START + 7200})
    code, text, _ = predict(run_cli, checkpoint, folder, tmp_path / "p.csv")
    assert code == 2 and "Traceback" not in text
    assert str(folder / "EDA.csv") in text and "+2 h" in text and "timezone" in text


def test_headers_disagreeing_with_the_session_name_exit_2(checkpoint, tmp_path, run_cli):
    # every header written in local time (UTC+2), the export named by its true UTC start
    folder = write_session(tmp_path / "1495437325_A01A3A", 130, start=START + 7200)
    code, text, _ = predict(run_cli, checkpoint, folder, tmp_path / "p.csv")
    assert code == 2 and "1495437325_A01A3A" in text and "timezone" in text
    assert not (tmp_path / "p.csv").exists()


def test_tag_hours_off_exits_2_naming_tags_csv(checkpoint, tmp_path, run_cli):
    folder = write_session(tmp_path / "s", 130)
    (folder / "tags.csv").write_text(f"{START + 60 - 3600:.2f}\n")
    code, text, _ = predict(run_cli, checkpoint, folder, tmp_path / "p.csv")
    assert code == 2 and str(folder / "tags.csv") in text and "timezone" in text


def test_header_in_milliseconds_exits_2(checkpoint, tmp_path, run_cli):
    folder = write_session(tmp_path / "s", 130, starts={"BVP": START * 1000})
    code, text, _ = predict(run_cli, checkpoint, folder, tmp_path / "p.csv")
    assert code == 2 and str(folder / "BVP.csv") in text and "not unix seconds" in text


def test_truncated_last_line_is_left_out(checkpoint, tmp_path, run_cli):
    whole = write_session(tmp_path / "whole", 130)
    cut = write_session(tmp_path / "cut", 130)
    acc = (cut / "ACC.csv").read_text()
    (cut / "ACC.csv").write_text(acc + "12,-3")  # the device software is mid-write
    code_w, _, rows_w = predict(run_cli, checkpoint, whole, tmp_path / "w.csv")
    code, text, rows = predict(run_cli, checkpoint, cut, tmp_path / "c.csv")
    assert code in (0, None) and code_w in (0, None)
    assert str(cut / "ACC.csv") in text and "cut short" in text
    # same windows, same times, same predictions
    assert [{**r, "subject": ""} for r in rows] == [{**r, "subject": ""} for r in rows_w]


def test_garbage_inside_a_file_exits_2_with_its_line(checkpoint, tmp_path, run_cli):
    folder = write_session(tmp_path / "s", 130)
    lines = (folder / "EDA.csv").read_text().split("\n")
    lines[40] = "0.4x1"
    (folder / "EDA.csv").write_text("\n".join(lines))
    code, text, _ = predict(run_cli, checkpoint, folder, tmp_path / "p.csv")
    assert code == 2 and str(folder / "EDA.csv") in text and "line 41" in text


def test_stdin_bad_and_cut_lines_are_skipped(checkpoint, tmp_path, caplog):
    folder = write_session(tmp_path / "s", 75)
    from test_stream import as_lines

    lines = as_lines(folder)
    lines.insert(100, "garbage\n")
    lines.insert(200, f"{START + 1:.6f},BVP\n")  # a value missing
    text = "".join(lines) + f"{START + 80:.3f},EDA,0.4"  # cut short: no newline
    preds = list(affectkit.stream(checkpoint, io.StringIO(text)))
    assert len(preds) == 2
    assert "line 101" in caplog.text and "line 201" in caplog.text and "cut short" in caplog.text


def test_figure_without_matplotlib_exits_2_before_work(checkpoint, tmp_path, run_cli, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    code, text = run_cli(
        "predict",
        "--checkpoint",
        checkpoint,
        "--dataset",
        "e4",
        "--data-dir",
        tmp_path / "nope",
        "--figure",
        tmp_path / "t.png",
    )
    assert code == 2 and "affectkit[plots]" in text  # not the missing data: checked first


@pytest.mark.filterwarnings("ignore")
def test_figure_is_written(checkpoint, tmp_path, run_cli):
    folder = write_session(tmp_path / "s", 200, tags=(100.0,))
    code, text, _ = predict(
        run_cli, checkpoint, folder, tmp_path / "p.csv", "--figure", tmp_path / "t.png"
    )
    assert code in (0, None), text
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command", ["train", "bench"])
def test_training_on_an_unlabelled_recording_is_refused(command, tmp_path, run_cli, monkeypatch):
    """Without labels.csv the e4 reader gives placeholder targets; training or scoring on
    them would silently produce a model that predicts nothing. Exit 2, naming the fix, and
    nothing written where the run would go."""
    monkeypatch.setenv("AFFECTKIT_CACHE", str(tmp_path / "cache"))
    folder = write_session(tmp_path / "s", 300)
    out = tmp_path / "out"
    code, text = run_cli(
        command, "--method", "mlp", "--dataset", "e4", "--data-dir", folder, "--out", out
    )
    assert code == 2
    assert "has no labels" in text and "labels.csv" in text and "predict" in text
    assert "Traceback" not in text
    assert not out.exists() or not any(p.suffix == ".json" for p in out.rglob("*"))
