"""Fitted models with the state: one joblib blob per scorer and fleet fingerprint.

``ModelStore`` writes files atomically into a directory; ``DatabaseModelStore`` keeps the bytes in
the state database (``model_blobs``), so every PostgreSQL replica reads the model the leader
fitted and a new leader does not refit. ``model_store_for`` picks the default: next to a SQLite
file (``sqlite:///path/x.db`` -> ``path/models/``), in the database otherwise; never the working
directory. A bot watching several clusters keeps each cluster's models apart: in a subdirectory
named after the cluster (``models/<cluster>/``), or under a ``<cluster>/`` prefix in the database.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.engine import make_url

from analysis.scoring import FeatureScorer, FleetMismatchError, ModelFormatError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from storage.repository import Repository

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


class DatabaseModelStore:
    """Save and load fitted scorers as blobs in the state database (``model_blobs``)."""

    def __init__(self, repository: Repository, cluster: str = "") -> None:
        """Keep the repository the blobs live in (and the cluster they are of)."""
        self.repository = repository
        self.cluster = cluster

    def path_for(self, name: str, fingerprint: str) -> str:
        """Return the blob name (and pseudo path) of a scorer of ``name`` fitted on ``fingerprint``."""
        prefix = f"{self.cluster}/" if self.cluster else ""
        return f"db:model_blobs/{prefix}{name}-{fingerprint}.joblib"

    def save(self, model: FeatureScorer) -> str:
        """Store a fitted model (replacing an older one of the same name) and return its path."""
        path = self.path_for(model.name, model.fingerprint_)
        self.repository.save_model_blob(path, model.to_bytes(), at=datetime.now(UTC))
        return path

    def load(self, cls: type[M], fingerprint: str) -> M | None:
        """Return the stored model of ``cls`` for this fleet, or None (unusable blobs: None)."""
        path = self.path_for(cls.name, fingerprint)
        data = self.repository.model_blob(path)
        if data is None:
            return None
        try:
            return cls.from_bytes(data, fingerprint=fingerprint)
        except (ModelFormatError, FleetMismatchError):
            logger.exception("ignoring unusable stored model %s; it will be refitted", path)
            return None


def default_model_dir(database_url: str) -> Path | None:
    """Return ``<dir of the SQLite file>/models`` for a SQLite file URL, else None."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db).expanduser().resolve().parent / "models"


def model_store_for(
    model_dir: Path | None, database_url: str, repository: Repository, cluster: str = ""
) -> ModelStore | DatabaseModelStore:
    """The model store of the settings: ``model_dir`` if set, else with the state; a named
    ``cluster``'s in its own subdirectory (or blob prefix)."""
    directory = model_dir if model_dir is not None else default_model_dir(database_url)
    if directory is None:
        return DatabaseModelStore(repository, cluster)
    return ModelStore(Path(directory) / cluster if cluster else directory)
