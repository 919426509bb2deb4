"""``affectkit stream`` / ``affectkit.stream``: the same predictions as ``predict``, live."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from fake_e4 import FS, START, signals, write_session

import affectkit
from affectkit import monitor


def offline(ckpt, folder):
    return affectkit.predict_timeline(ckpt, folder, dataset="e4", use_cache=False)


def as_lines(folder, tags=()) -> list[str]:
    """The export's samples as ``t,modality,value`` lines in time order, as a bridge sends."""
    rows = []
    for name in FS:
        text = (folder / f"{name}.csv").read_text().splitlines()
        start, fs = float(text[0].split(",")[0]), float(text[1].split(",")[0])
        rows += [
            (start + i / fs, f"{start + i / fs!r},{name},{v}\n") for i, v in enumerate(text[2:])
        ]
    rows += [(START + t, f"{START + t!r},tag\n") for t in tags]
    rows.sort(key=lambda r: r[0])  # stable: equal times keep the file order
    return [r[1] for r in rows]


def assert_same(tl, preds):
    assert len(preds) == len(tl)
    got = np.array([[p.distribution[e] for e in tl.emotions] for p in preds])
    np.testing.assert_allclose(got, tl.distribution, rtol=0, atol=1e-5)
    assert [p.window.start_s for p in preds] == tl["start_s"].tolist()
    assert [p.window.segment for p in preds] == tl["segment"].tolist()
    assert [";".join(p.window.imputed) for p in preds] == tl["imputed"].tolist()
    np.testing.assert_allclose([p.entropy for p in preds], tl["entropy"], atol=1e-5)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A session with a tag and EDA missing for two minutes (windows there are imputed)."""
    sig = signals(420, seed=7)
    sig["EDA"][180 * 4 : 300 * 4] = np.nan
    folder = tmp_path_factory.mktemp("rec") / "1495437325_A01A3A"
    return write_session(folder, 420, sig=sig, tags=(130.0,))


def test_replay_equals_predict_window_for_window(checkpoint, recording):
    tl = offline(checkpoint, recording)
    assert "gsr" in tl["imputed"] and "" in tl["imputed"]  # both kinds of window are compared
    preds = list(affectkit.stream(checkpoint, recording, speed=None))
    assert_same(tl, preds)
    assert [p.window.start_wall for p in preds] == tl["start_wall"].tolist()
    assert all(p.latency_ms >= 0 for p in preds)


def test_stdin_lines_equal_predict(checkpoint, recording):
    tl = offline(checkpoint, recording)
    preds = list(affectkit.stream(checkpoint, io.StringIO("".join(as_lines(recording, (130.0,))))))
    assert_same(tl, preds)


def test_replay_paces_at_speed(checkpoint, tmp_path):
    folder = write_session(tmp_path / "s", 70)
    t = time.perf_counter()
    preds = list(affectkit.stream(checkpoint, folder, speed=70.0))
    assert len(preds) == 2  # windows at 0 s and 10 s
    assert time.perf_counter() - t >= 0.9  # 70 s of recording at 70x: at least a second


def test_cli_stream_json_lines_and_summary(checkpoint, recording, run_cli, capsys):
    from affectkit import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(
            [
                "stream",
                "--checkpoint",
                str(checkpoint),
                "--source",
                str(recording),
                "--speed",
                "max",
            ]
        )
    out = capsys.readouterr()
    assert exc.value.code in (0, None), out.err
    lines = [json.loads(x) for x in out.out.splitlines()]
    first = lines[0]
    assert set(first) >= {
        "start_s",
        "end_s",
        "start",
        "end",
        "distribution",
        "entropy",
        "imputed",
        "latency_ms",
    }
    assert first["start"] == "2017-05-22T07:15:25.000+00:00"
    assert abs(sum(first["distribution"].values()) - 1) < 1e-6
    assert "end of source" in out.err and "p99" in out.err and "Traceback" not in out.err


def test_ctrl_c_ends_cleanly_with_summary(checkpoint, tmp_path, run_cli, monkeypatch):
    folder = write_session(tmp_path / "s", 300)
    real_sleep, calls = time.sleep, []

    def sleep(s):  # the user presses Ctrl-C while the replay waits, after some windows
        calls.append(s)
        if len(calls) > 400:
            raise KeyboardInterrupt
        real_sleep(0)

    monkeypatch.setattr(time, "sleep", sleep)
    code, text = run_cli("stream", "--checkpoint", checkpoint, "--source", folder, "--speed", "1")
    assert code in (0, None)
    assert "interrupted:" in text and "p50" in text and "Traceback" not in text


@pytest.mark.parametrize("speed", ["0", "-3", "fast", "inf"])
def test_bad_speed_exits_2(checkpoint, run_cli, tmp_path, speed):
    code, text = run_cli(
        "stream", "--checkpoint", checkpoint, "--source", tmp_path, "--speed", speed
    )
    assert code == 2 and "--speed" in text and "Traceback" not in text


def test_missing_source_exits_2(checkpoint, run_cli, tmp_path):
    code, text = run_cli("stream", "--checkpoint", checkpoint, "--source", tmp_path / "nope")
    assert code == 2 and str(tmp_path / "nope") in text and "Traceback" not in text


def test_entropy_bounds():
    assert monitor.entropy(np.array([[1.0, 0.0], [0.5, 0.5]])).tolist() == [0.0, 1.0]


def test_stdin_time_gap_skips_windows_like_predict(checkpoint, tmp_path, caplog):
    """Three minutes without any line: the same windows are skipped as offline, where the
    files hold empty lines there, one warning for the run, and the times after it hold."""
    folder = write_session(tmp_path / "s", 400)
    lines = [x for x in as_lines(folder) if not START + 150 <= float(x.split(",")[0]) < START + 330]
    for name in FS:  # the same gap as empty lines in the files
        rows = (folder / f"{name}.csv").read_text().split("\n")
        for i in range(2 + 150 * FS[name], 2 + 330 * FS[name]):
            rows[i] = ""
        (folder / f"{name}.csv").write_text("\n".join(rows))
    tl = offline(checkpoint, folder)
    caplog.clear()
    preds = list(affectkit.stream(checkpoint, io.StringIO("".join(lines))))
    assert_same(tl, preds)
    assert tl["start_s"].tolist() == [*np.arange(0, 91, 10.0), 330.0, 340.0]
    assert caplog.text.count("no signal at all") == 1
