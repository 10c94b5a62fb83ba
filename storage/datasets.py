"""Load labelled multivariate data for ``gpu-risk evaluate``: SMD's npz layout and a CSV layout.

SMD layout (``--layout smd``): ``DIR/machine-*.npz`` (any ``*.npz``), each with
``train`` (T, D) float, ``test`` (T', D) float, ``test_label`` (T',) 0/1 and optionally ``interp``
(a 0-d string, one line per anomaly segment ``START-END:d1,d2,...``: test rows START..END-1,
0-based, END exclusive; dims 1-based).

CSV layout (``--layout csv``): one sub-directory per machine, ``DIR/<machine>/`` holding
``train.csv`` and ``test.csv`` with a header row. ``test.csv`` has a ``label`` column (0/1); a
``label`` column in ``train.csv`` is optional and its 1-rows are dropped before fitting. A
``timestamp`` column is allowed in both and ignored. Every other column is a numeric metric; train
and test must have the same metric columns in the same order (dim 1 = first metric column).
``interpretation.txt`` (optional) holds the segments in the SMD interp format. ``DIR`` itself may
be one machine directory (it then holds ``train.csv``).

Every problem raises :class:`DatasetError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.evaluation import InterpretationSegment, parse_interpretation
from analysis.types import BenignEvent, Fault, GpuRef, parse_time

Layout = Literal["smd", "csv"]
LAYOUTS: tuple[str, ...] = ("smd", "csv")
IGNORED_COLUMNS: frozenset[str] = frozenset({"timestamp"})


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class LabelledMachine:
    """One machine's data: training rows, test rows, test labels and interpretation segments."""

    name: str
    train: npt.NDArray[np.float64]
    test: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int8]
    segments: tuple[InterpretationSegment, ...]
    columns: tuple[str, ...]
    source: Path


@dataclass(frozen=True)
class MachineRef:
    """Where one machine's data lives, before it is loaded."""

    name: str
    path: Path
    layout: Layout


def discover(path: Path, layout: str | None = None) -> tuple[MachineRef, ...]:
    """List the machines under ``path`` (layout auto-detected when None), sorted by name."""
    if not path.exists():
        raise DatasetError(f"{path}: no such directory")
    if not path.is_dir():
        raise DatasetError(f"{path}: not a directory (expected a dataset directory)")
    if layout is not None and layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    npz = sorted(path.glob("*.npz"))
    if layout is None:
        layout = "smd" if npz else "csv"
    if layout == "smd":
        if not npz:
            raise DatasetError(f"{path}: no *.npz files (SMD layout: DIR/machine-*.npz)")
        return tuple(MachineRef(p.stem, p, "smd") for p in npz)
    if (path / "train.csv").is_file():
        return (MachineRef(path.resolve().name, path, "csv"),)
    dirs = sorted(d for d in path.iterdir() if d.is_dir() and (d / "train.csv").is_file())
    if not dirs:
        raise DatasetError(
            f"{path}: no machine directories with train.csv "
            "(CSV layout: DIR/<machine>/train.csv, test.csv with a 'label' column)"
        )
    return tuple(MachineRef(d.name, d, "csv") for d in dirs)


def load_machine(ref: MachineRef) -> LabelledMachine:
    """Load and validate one machine's data, raising DatasetError naming the file on problems."""
    if ref.layout == "smd":
        return _load_npz(ref)
    return _load_csv(ref)


def _load_npz(ref: MachineRef) -> LabelledMachine:
    """Read one SMD-layout npz file."""
    f = ref.path
    try:
        with np.load(f, allow_pickle=False) as data:
            keys = set(data.files)
            missing = [k for k in ("train", "test", "test_label") if k not in keys]
            if missing:
                raise DatasetError(
                    f"{f}: missing array(s) {', '.join(missing)} (has: {', '.join(sorted(keys))})"
                )
            train = np.asarray(data["train"], dtype=np.float64)
            test = np.asarray(data["test"], dtype=np.float64)
            raw_labels = np.asarray(data["test_label"])
            interp = str(data["interp"][()]) if "interp" in keys else ""
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{f}: not a readable npz file ({exc})") from None
    return _validated(
        ref, train=train, test=test, raw_labels=raw_labels, interp=interp, f=f, interp_f=None
    )


def _read_csv(f: Path) -> pd.DataFrame:
    """Read one CSV file with a header, or raise DatasetError naming it."""
    if not f.is_file():
        raise DatasetError(f"{f}: file missing")
    try:
        frame = pd.read_csv(f)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{f}: not a readable CSV file ({exc})") from None
    if frame.empty:
        raise DatasetError(f"{f}: no data rows")
    return frame


def _metric_block(frame: pd.DataFrame, f: Path) -> pd.DataFrame:
    """Return the metric columns of a CSV frame, checking they are numeric."""
    cols = [c for c in frame.columns if c != "label" and str(c).lower() not in IGNORED_COLUMNS]
    if not cols:
        raise DatasetError(f"{f}: no metric columns besides label/timestamp")
    block = frame[cols]
    bad = [str(c) for c in cols if not pd.api.types.is_numeric_dtype(block[c])]
    if bad:
        raise DatasetError(f"{f}: non-numeric column(s) {', '.join(bad[:5])}")
    return block


def _load_csv(ref: MachineRef) -> LabelledMachine:
    """Read one CSV-layout machine directory."""
    train_f, test_f = ref.path / "train.csv", ref.path / "test.csv"
    train_df, test_df = _read_csv(train_f), _read_csv(test_f)
    if "label" not in test_df.columns:
        raise DatasetError(f"{test_f}: no 'label' column (0/1 per row)")
    if "label" in train_df.columns:
        train_df = train_df[pd.to_numeric(train_df["label"], errors="coerce").fillna(0) == 0]
        if train_df.empty:
            raise DatasetError(f"{train_f}: every row is labelled anomalous; nothing to fit on")
    train_block = _metric_block(train_df, train_f)
    test_block = _metric_block(test_df, test_f)
    if list(train_block.columns) != list(test_block.columns):
        raise DatasetError(
            f"{test_f}: metric columns differ from {train_f.name} "
            f"({list(test_block.columns)[:5]}... vs {list(train_block.columns)[:5]}...)"
        )
    interp_f = ref.path / "interpretation.txt"
    interp = interp_f.read_text(encoding="utf-8") if interp_f.is_file() else ""
    return _validated(
        ref,
        train=train_block.to_numpy(dtype=np.float64),
        test=test_block.to_numpy(dtype=np.float64),
        raw_labels=test_df["label"].to_numpy(),
        interp=interp,
        f=test_f,
        interp_f=interp_f,
        columns=tuple(str(c) for c in train_block.columns),
    )


def _validated(
    ref: MachineRef,
    *,
    train: npt.NDArray[np.float64],
    test: npt.NDArray[np.float64],
    raw_labels: npt.NDArray[np.generic],
    interp: str,
    f: Path,
    interp_f: Path | None,
    columns: tuple[str, ...] | None = None,
) -> LabelledMachine:
    """Check shapes, values and labels; parse the interpretation lines."""
    if train.ndim != 2 or train.shape[0] == 0:
        raise DatasetError(f"{f}: train must be a non-empty (T, D) array, got {train.shape}")
    if test.ndim != 2 or test.shape[0] == 0:
        raise DatasetError(f"{f}: test must be a non-empty (T, D) array, got {test.shape}")
    if train.shape[1] != test.shape[1]:
        raise DatasetError(f"{f}: train has {train.shape[1]} columns but test {test.shape[1]}")
    if raw_labels.ndim != 1 or raw_labels.shape[0] != test.shape[0]:
        raise DatasetError(
            f"{f}: {raw_labels.shape} labels for {test.shape[0]} test rows (need one per row)"
        )
    try:
        labels_f = raw_labels.astype(np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{f}: labels must be 0/1 numbers") from None
    if not np.isin(labels_f, (0.0, 1.0)).all():
        raise DatasetError(f"{f}: labels must be 0 or 1 (found {np.unique(labels_f)[:5]})")
    for part, arr in (("train", train), ("test", test)):
        if not np.isfinite(arr).all():
            rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
            raise DatasetError(
                f"{f}: {part} has NaN/inf values (first at row {int(rows[0])}); fill or drop them"
            )
    where = interp_f if interp_f is not None else f
    try:
        segs = parse_interpretation(interp, n_rows=test.shape[0])
    except ValueError as exc:
        raise DatasetError(f"{where}: interpretation {exc}") from None
    n_dims = test.shape[1]
    for seg in segs:
        if max(seg.dims) > n_dims:
            raise DatasetError(
                f"{where}: interpretation dim {max(seg.dims)} is past the {n_dims} metrics"
            )
    return LabelledMachine(
        name=ref.name,
        train=train,
        test=test,
        labels=labels_f.astype(np.int8),
        segments=segs,
        columns=columns or tuple(f"dim{i}" for i in range(1, n_dims + 1)),
        source=ref.path,
    )


def _entries(
    path: Path, what: str, noun: str, required: tuple[str, ...]
) -> list[tuple[str, str, dict[str, Any], tuple[str, ...]]]:
    """Read a JSON list of ground-truth entries: (where, id, entry, affected GPU keys) each.

    Checks what ``faults.json`` and ``benign.json`` share (a readable JSON list of objects with
    the ``required`` fields, unique ids, ``affected`` GPU keys); DatasetError naming file and entry.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: no such {what} file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of {noun}s, got {type(data).__name__}")
    out = []
    seen: set[str] = set()
    for i, entry in enumerate(data):
        where = f"{path}: {noun} #{i + 1}"
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: expected an object, got {type(entry).__name__}")
        missing = [k for k in required if not entry.get(k)]
        if missing:
            raise DatasetError(f"{where}: missing {', '.join(missing)}")
        eid = str(entry["id"])
        if eid in seen:
            raise DatasetError(f"{where}: duplicate id {eid!r}")
        seen.add(eid)
        affected = entry.get("affected") or []
        if not isinstance(affected, list) or not all(isinstance(a, str) for a in affected):
            raise DatasetError(f"{where} ({eid}): 'affected' must be a list of '<node>/<gpu>'")
        for key in affected:
            try:
                GpuRef.parse(key)
            except ValueError as exc:
                raise DatasetError(f"{where} ({eid}): {exc}") from None
        out.append((f"{where} ({eid})", eid, entry, tuple(affected)))
    return out


def load_faults(path: Path) -> tuple[Fault, ...]:
    """Read a ``faults.json`` incident history; DatasetError naming the file and entry on problems.

    The file is a JSON list of ``{"id", "kind", "target", "affected": ["<node>/<gpu>", ...],
    "onset": RFC 3339, "failure": RFC 3339 or null}`` (the simulator writes the same format,
    with ``"signal_start"`` where a precursor's signal starts after its onset; optional).
    """
    faults: list[Fault] = []
    for where, fid, entry, affected in _entries(
        path, "faults", "fault", ("id", "kind", "target", "onset")
    ):
        try:
            onset = parse_time(str(entry["onset"]))
            failure = parse_time(str(entry["failure"])) if entry.get("failure") else None
            signal = parse_time(str(entry["signal_start"])) if entry.get("signal_start") else None
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        if failure is not None and failure < onset:
            raise DatasetError(f"{where}: failure is before onset")
        if signal is not None and (signal < onset or (failure is not None and signal > failure)):
            raise DatasetError(f"{where}: signal_start must lie between onset and failure")
        faults.append(
            Fault(
                id=fid,
                kind=str(entry["kind"]),
                target=str(entry["target"]),
                affected=affected,
                onset=onset,
                failure=failure,
                signal_start=signal,
            )
        )
    return tuple(faults)


def load_benign(path: Path) -> tuple[BenignEvent, ...]:
    """Read a ``benign.json`` (events that must not page); DatasetError naming file and entry.

    The file is a JSON list of ``{"id", "kind", "target", "affected": ["<node>/<gpu>", ...],
    "start": RFC 3339, "end": RFC 3339}`` as the scenario simulator writes it.
    """
    events: list[BenignEvent] = []
    for where, eid, entry, affected in _entries(
        path, "benign-events", "event", ("id", "kind", "target", "start", "end")
    ):
        try:
            start, end = parse_time(str(entry["start"])), parse_time(str(entry["end"]))
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        if end < start:
            raise DatasetError(f"{where}: end is before start")
        events.append(
            BenignEvent(
                id=eid,
                kind=str(entry["kind"]),
                target=str(entry["target"]),
                affected=affected,
                start=start,
                end=end,
            )
        )
    return tuple(events)
