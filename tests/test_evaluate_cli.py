"""``gpu-risk evaluate`` end to end: SMD npz and CSV layouts, one real SMD machine, error paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bot.cli import build_app

SMD_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "smd"
KEYS = ("f1_point", "f1_event", "f1_point_adjusted", "roc_auc", "hit_at_100", "hit_at_150")


def run(*args: str) -> tuple[int, str, str]:
    """Invoke the CLI; return exit code, stdout and stderr."""
    result = CliRunner().invoke(build_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def synthetic(seed: int, dims: int = 5) -> dict[str, np.ndarray]:
    """A small machine: normal train, test with one anomaly in dims 2 and 4 (1-based)."""
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(800, dims)).astype(np.float32)
    test = rng.normal(size=(400, dims)).astype(np.float32)
    label = np.zeros(400, dtype=np.int8)
    test[200:220, 1] += 8.0
    test[200:220, 3] += 8.0
    label[200:220] = 1
    return {"train": train, "test": test, "test_label": label, "interp": np.array("200-220:2,4")}


def write_smd(root: Path, names: tuple[str, ...] = ("machine-9-1", "machine-9-2")) -> Path:
    """Write SMD-layout npz files."""
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        np.savez(root / f"{name}.npz", **synthetic(i))
    return root


def write_csv_machine(root: Path, name: str, seed: int) -> Path:
    """Write one CSV-layout machine directory."""
    data = synthetic(seed)
    d = root / name
    d.mkdir(parents=True)
    cols = [f"m{i}" for i in range(data["train"].shape[1])]
    header = "timestamp," + ",".join(cols)
    rows = [f"{t}," + ",".join(f"{v:.5f}" for v in r) for t, r in enumerate(data["train"])]
    (d / "train.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    rows = [
        f"{t}," + ",".join(f"{v:.5f}" for v in r) + f",{lab}"
        for t, (r, lab) in enumerate(zip(data["test"], data["test_label"], strict=True))
    ]
    (d / "test.csv").write_text(header + ",label\n" + "\n".join(rows) + "\n")
    (d / "interpretation.txt").write_text("200-220:2,4\n")
    return d


def test_smd_layout_json(tmp_path: Path) -> None:
    root = write_smd(tmp_path / "smd")
    code, out, _ = run("evaluate", "--path", str(root), "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert set(data["machines"]) == {"machine-9-1", "machine-9-2"}
    for row in data["machines"].values():
        assert row["recall_event"] == 1.0
        assert row["hit_at_100"] == 1.0  # dims 2 and 4 are the two shifted ones
        assert row["roc_auc"] > 0.9
        assert row["f1_point_adjusted"] >= row["f1_point"]
        assert row["test_rows"] == 400 and row["segments"] == 1
    for key in KEYS:
        vals = [m[key] for m in data["machines"].values()]
        assert data["mean"][key] == pytest.approx(sum(vals) / len(vals), abs=1e-4)
    # same input, same output (seeded detector and subsample)
    assert json.loads(run("evaluate", "--path", str(root), "--format", "json")[1]) == data


def test_csv_layout_matches_smd_numbers(tmp_path: Path) -> None:
    smd = write_smd(tmp_path / "smd", ("a",))
    csv_root = tmp_path / "csv"
    write_csv_machine(csv_root, "a", 0)
    code, out, _ = run("evaluate", "--path", str(csv_root), "--layout", "csv", "--format", "json")
    assert code == 0, out
    from_csv = json.loads(out)["machines"]["a"]
    from_npz = json.loads(run("evaluate", "--path", str(smd), "--format", "json")[1])["machines"]
    assert from_csv["hit_at_100"] == 1.0 and from_csv["recall_event"] == 1.0
    assert from_csv["roc_auc"] == pytest.approx(from_npz["a"]["roc_auc"], abs=0.01)
    # DIR may also be one machine directory; layout auto-detected
    code, out, _ = run("evaluate", "--path", str(csv_root / "a"), "--format", "json")
    assert code == 0 and set(json.loads(out)["machines"]) == {"a"}


def test_text_table_labels_point_adjust(tmp_path: Path) -> None:
    code, out, _ = run("evaluate", "--path", str(write_smd(tmp_path / "smd")), "--detector", "hbos")
    assert code == 0, out
    assert "machine-9-1" in out and "mean" in out
    assert "point-adjusted" in out and "F1 event" in out and "Hit@150%" in out
    assert "hbos" in out


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such directory"),
        ("file", "not a directory"),
        ("empty_smd", "no *.npz files"),
        ("empty_csv", "no machine directories with train.csv"),
        ("corrupt", "not a readable npz file"),
        ("no_label_key", "missing array(s) test_label"),
        ("short_labels", "labels for 400 test rows"),
        ("bad_interp", "interpretation line 1"),
        ("dim_past", "interpretation dim 9 is past the 5 metrics"),
        ("nan", "NaN/inf"),
        ("csv_no_label", "no 'label' column"),
        ("csv_text", "non-numeric column(s) m0"),
        ("csv_cols", "metric columns differ"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, setup: str, message: str) -> None:
    target = tmp_path / "data"
    layout: list[str] = []
    if setup == "file":
        target.write_text("x")
    elif setup == "empty_smd":
        target.mkdir()
        layout = ["--layout", "smd"]
    elif setup == "empty_csv":
        target.mkdir()
    elif setup == "corrupt":
        target.mkdir()
        (target / "machine-1-1.npz").write_bytes(b"not a zip at all")
    elif setup in ("no_label_key", "short_labels", "bad_interp", "dim_past", "nan"):
        target.mkdir()
        data = synthetic(0)
        if setup == "no_label_key":
            del data["test_label"]
        elif setup == "short_labels":
            data["test_label"] = data["test_label"][:10]
        elif setup == "bad_interp":
            data["interp"] = np.array("200:2,4")
        elif setup == "dim_past":
            data["interp"] = np.array("200-220:9")
        else:
            data["train"][5, 2] = np.nan
        np.savez(target / "machine-1-1.npz", **data)
    elif setup.startswith("csv"):
        d = write_csv_machine(target, "m", 0)
        test_csv = d / "test.csv"
        if setup == "csv_no_label":
            lines = test_csv.read_text().splitlines()
            test_csv.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
        elif setup == "csv_text":
            lines = test_csv.read_text().splitlines()
            lines[3] = lines[3].split(",")[0] + ",oops," + ",".join(lines[3].split(",")[2:])
            test_csv.write_text("\n".join(lines) + "\n")
        else:
            lines = test_csv.read_text().splitlines()
            lines[0] = lines[0].replace("m0", "other")
            test_csv.write_text("\n".join(lines) + "\n")
    code, out, err = run("evaluate", "--path", str(target), *layout)
    assert code == 2, (out, err)
    assert message in err
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) <= 3  # one message (rich may soft-wrap a long path)


def test_bad_options_exit_2(tmp_path: Path) -> None:
    root = write_smd(tmp_path / "smd", ("a",))
    code, _, err = run("evaluate", "--path", str(root), "--quantile", "1.5")
    assert code == 2 and "--quantile must be between 0 and 1" in err
    code, _, err = run("evaluate", "--path", str(root), "--detector", "lstm")
    assert code == 2 and "lstm" in err


@pytest.mark.skipif(not (SMD_DIR / "machine-1-2.npz").is_file(), reason="SMD data not present")
def test_one_real_smd_machine(tmp_path: Path) -> None:
    root = tmp_path / "smd"
    root.mkdir()
    (root / "machine-1-2.npz").symlink_to(SMD_DIR / "machine-1-2.npz")
    code, out, _ = run("evaluate", "--path", str(root), "--format", "json")
    assert code == 0, out
    row = json.loads(out)["machines"]["machine-1-2"]
    assert row["test_rows"] == 23694 and row["segments"] == 10
    assert row["train_rows_used"] == 23694  # the tail detector uses every training row
    # Better than chance, and point-adjust inflates as it does in the literature.
    assert row["roc_auc"] > 0.7
    assert row["f1_point_adjusted"] > row["f1_point"] + 0.2
    # Flag rate near the 1 % the training quantile implies (no peeking at test labels).
    assert 0.002 < row["flagged_rate"] < 0.05
    assert 0.0 < row["hit_at_100"] <= row["hit_at_150"] <= 1.0
    base = json.loads(out)["sets"]["dev"]["baseline"]["machines"]["machine-1-2"]
    assert base["train_rows_used"] == 20_000


def test_sets_split_dev_and_report_with_baseline_and_intervals(tmp_path: Path) -> None:
    names = ("machine-1-1", "machine-1-2", "machine-2-1", "other-a")
    root = write_smd(tmp_path / "smd", names)
    code, out, _ = run("evaluate", "--path", str(root), "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert list(data["sets"]) == ["report", "dev", "other"]
    assert set(data["sets"]["dev"]["machines"]) == {"machine-1-1", "machine-1-2"}
    assert set(data["sets"]["report"]["machines"]) == {"machine-2-1"}
    dev = data["sets"]["dev"]
    assert set(dev["baseline"]["machines"]) == set(dev["machines"])
    assert data["settings"]["detector"] == "tail"
    assert data["baseline_settings"]["detector"] == "iforest"
    # both use the same threshold rule
    assert data["settings"]["threshold"] == data["baseline_settings"]["threshold"]
    for key in KEYS:
        lo, hi = dev["interval_95"][key]
        assert lo <= dev["mean"][key] <= hi
    code, out, _ = run("evaluate", "--path", str(root), "--format", "json", "--set", "report")
    assert code == 0 and list(json.loads(out)["sets"]) == ["report"]
    code, out, _ = run("evaluate", "--path", str(root), "--set", "dev", "--no-baseline")
    assert code == 0, out
    assert "development set" in out and "report set" not in out and "baseline" not in out
    code, out, _ = run("evaluate", "--path", str(root))
    assert out.index("report set") < out.index("development set") and "baseline" in out


def test_set_without_machines_is_exit_2(tmp_path: Path) -> None:
    root = write_smd(tmp_path / "smd", ("machine-1-1",))
    code, _, err = run("evaluate", "--path", str(root), "--set", "report")
    assert code == 2 and "no machine of the report set" in err


def test_tail_detector_scores_and_ranks_a_multi_dim_shift() -> None:
    from analysis.evaluation.smd_detector import TailSurpriseDetector, trailing_mean

    rng = np.random.default_rng(3)
    train = rng.normal(size=(2000, 6))
    train[:, 5] = 0.0  # constant in training: floored scale, finite surprise
    test = rng.normal(size=(300, 6))
    test[:, 5] = 0.0
    test[100:120, 1] += 6.0
    test[100:120, 3] -= 6.0
    test[100:120, 4] += 4.0
    det = TailSurpriseDetector(top_k=3, window=5).fit(train)
    scores = det.decision_function(test)
    assert scores.shape == (300,) and np.isfinite(scores).all()
    assert scores[104:120].min() > np.quantile(det.decision_function(train), 0.995)
    assert det.rank(test[100:120])[:3] in {(2, 4, 5), (4, 2, 5)}
    # trailing: a score never looks ahead
    assert scores[99] == pytest.approx(det.decision_function(test[:100])[99])
    assert trailing_mean([1.0, 2.0, 3.0, 4.0], 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    with pytest.raises(ValueError, match="window"):
        TailSurpriseDetector(window=0)
    with pytest.raises(ValueError, match="expected"):
        det.rank(np.zeros((2, 3)))


def test_bootstrap_interval_and_machine_sets() -> None:
    from analysis.evaluation.smd import bootstrap_mean_ci, machine_set

    assert bootstrap_mean_ci([0.5, 0.5, None]) == (0.5, 0.5)
    lo, hi = bootstrap_mean_ci([0.0, 1.0, 0.2, 0.8])
    assert lo is not None and hi is not None and 0.0 <= lo < 0.5 < hi <= 1.0
    assert bootstrap_mean_ci([]) == (None, None)
    assert [machine_set(n) for n in ("machine-1-3", "machine-2-8", "x")] == [
        "dev",
        "report",
        "other",
    ]
