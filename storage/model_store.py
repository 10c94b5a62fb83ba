"""Fitted models on disk: one joblib file per scorer and fleet fingerprint, written atomically."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TypeVar

from analysis.scoring import FeatureScorer, FleetMismatchError, ModelFormatError

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=FeatureScorer)


class ModelStore:
    """Save and load fitted scorers under ``directory`` as ``<name>-<fingerprint>.joblib``."""

    def __init__(self, directory: str | Path) -> None:
        """Remember the directory (created on first save)."""
        self.directory = Path(directory)

    def path_for(self, name: str, fingerprint: str) -> Path:
        """Return the file a scorer of ``name`` fitted on ``fingerprint`` lives in."""
        return self.directory / f"{name}-{fingerprint}.joblib"

    def save(self, model: FeatureScorer) -> Path:
        """Write a fitted model atomically (temp file + rename) and return its path."""
        data = model.to_bytes()
        path = self.path_for(model.name, model.fingerprint_)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".joblib")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def load(self, cls: type[M], fingerprint: str) -> M | None:
        """Return the stored model of ``cls`` for this fleet, or None when there is none.

        A file that exists but cannot be used (corrupt, other version) is logged and treated as
        absent so the caller refits; a model of another fleet is never returned.
        """
        path = self.path_for(cls.name, fingerprint)
        if not path.is_file():
            return None
        try:
            return cls.from_bytes(path.read_bytes(), fingerprint=fingerprint)
        except (ModelFormatError, FleetMismatchError):
            logger.exception("ignoring unusable model file %s; it will be refitted", path)
            return None

    def load_file(self, cls: type[M], path: str | Path, fingerprint: str) -> M:
        """Load a model from an explicit file; raise FleetMismatchError if it is another fleet's."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"model file {p} not found")
        return cls.from_bytes(p.read_bytes(), fingerprint=fingerprint)
