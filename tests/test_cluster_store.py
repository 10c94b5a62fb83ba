"""The state store of a bot watching several clusters (SQLite and PostgreSQL): each cluster's
pipeline sees a scoped store, so the same node name in two clusters is two incidents, a failed
scan degrades only its cluster's source, and scores, models and feedback stay apart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analysis.types import GpuScore, Incident, RootCause
from storage.model_store import DatabaseModelStore, ModelStore, model_store_for
from storage.repository import Repository
from tests.fixtures.postgres import (  # noqa: F401 - pytest fixtures
    PostgresServer,
    create_database,
    db_url,
    postgres_server,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def hot(node: str = "gpu-node-001", gpu: str = "3") -> Incident:
    """One GPU at risk (same root cause, whatever the cluster)."""
    score = GpuScore(node, gpu, 0.95)
    return Incident(f"{node}/{gpu}", T0, "warning", 0.95, RootCause(score.key, "gpu"), (score,))


@pytest.fixture
def repo(db_url: str) -> Iterator[Repository]:  # noqa: F811
    repository = Repository.from_url(db_url)
    yield repository
    repository.close()


def test_the_same_node_in_two_clusters_is_two_incidents(repo: Repository) -> None:
    a, b = repo.scoped("a"), repo.scoped("b")
    (da,) = a.apply_cycle(T0, [hot()], True)
    (db,) = b.apply_cycle(T0, [hot()], True)
    assert da.notify and db.notify and da.incident_id != db.incident_id
    assert [r.cluster for r in a.open_incidents()] == ["a"]
    assert [r.cluster for r in b.open_incidents()] == ["b"]
    assert sorted(r.cluster for r in repo.open_incidents()) == ["a", "b"]  # unscoped: every one
    assert a.open_by_key(hot().dedup_key).id == da.incident_id  # type: ignore[union-attr]
    assert repo.open_by_key(hot().dedup_key) is None  # the cluster "" has none
    # the posts carry their cluster (where they go and what they say)
    posts = {o.payload["cluster"]: o.incident_id for o in repo.outbox(status="pending")}
    assert posts == {"a": da.incident_id, "b": db.incident_id}
    # cluster a's healthy cycles resolve a's incident only
    for i in range(1, 3):
        a.apply_cycle(T0 + i * MINUTE, [], True)
    assert a.open_incidents() == [] and len(b.open_incidents()) == 1
    assert [r.status for r in a.latest_for("gpu-node-001")] == ["resolved"]
    assert [r.status for r in b.latest_for("gpu-node-001")] == ["open"]
    assert {r.cluster for r in repo.incidents()} == {"a", "b"}


def test_a_failed_scan_degrades_only_its_clusters_source(repo: Repository) -> None:
    a, b = repo.scoped("a"), repo.scoped("b")
    b.record_scan(T0, True, 0.1, 16)
    assert a.record_scan(T0, False, 0.2, 0, error="connection refused") == "degraded"
    b.record_scan(T0 + MINUTE, True, 0.1, 16)
    assert a.status().data_source == "degraded" and a.status().last_ok_scan is None
    assert b.status().data_source == "ok" and b.status().last_scan.gpus_scored == 16  # type: ignore[union-attr]
    assert repo.status().data_source == "unknown"  # the cluster "" never scanned
    assert [s.cluster for s in a.scans()] == ["a"]
    (note,) = [o for o in repo.outbox(status="pending") if o.kind == "data_source"]
    assert note.payload["cluster"] == "a" and note.payload["error"] == "connection refused"
    assert a.record_scan(T0 + MINUTE, True, 0.1, 16) == "recovered"


def test_scores_models_and_feedback_stay_in_their_cluster(repo: Repository) -> None:
    a, b = repo.scoped("a"), repo.scoped("b")
    a.record_scores(T0, [GpuScore("gpu-node-001", "0", 0.9)])
    b.record_scores(T0 + MINUTE, [GpuScore("gpu-node-001", "0", 0.2)])
    assert a.top_gpus() == [GpuScore("gpu-node-001", "0", 0.9)]
    assert b.top_gpus() == [GpuScore("gpu-node-001", "0", 0.2)]
    # unscoped: each cluster's latest cycle, not only the cluster scanned last
    assert sorted(g.score for g in repo.top_gpus()) == [0.2, 0.9]
    assert a.score_history("gpu-node-001/0") == [(T0, 0.9)]
    for view, name in ((a, "graph"), (b, "graph")):
        view.record_model(name=name, fleet_fingerprint="f", features=["x"], version="1",
                          path=f"/m/{view.cluster}", fitted_at=T0)  # fmt: skip
    assert a.status().model.path == "/m/a"  # type: ignore[union-attr]
    assert b.latest_model(name="graph").cluster == "b"  # type: ignore[union-attr]
    (da,) = a.apply_cycle(T0, [hot()], True)
    b.apply_cycle(T0, [hot()], True)
    repo.record_feedback(da.incident_id, "false_alarm", "U1", T0)  # type: ignore[arg-type]
    assert [f.incident_id for f in a.feedback()] == [da.incident_id]
    assert b.feedback() == [] and len(repo.feedback()) == 1


def test_model_files_of_a_cluster_go_to_its_own_subdirectory(tmp_path: Path) -> None:
    repo = Repository.from_url("sqlite://")
    try:
        store = model_store_for(tmp_path / "models", "sqlite://", repo, "a")
        assert isinstance(store, ModelStore) and store.directory == tmp_path / "models" / "a"
        by_file = model_store_for(None, f"sqlite:///{tmp_path / 'x.db'}", repo, "b")
        assert isinstance(by_file, ModelStore) and by_file.directory == tmp_path / "models" / "b"
        one = model_store_for(None, f"sqlite:///{tmp_path / 'x.db'}", repo)
        assert isinstance(one, ModelStore) and one.directory == tmp_path / "models"
        in_db = model_store_for(None, "postgresql+psycopg://u@h/db", repo, "a")
        assert isinstance(in_db, DatabaseModelStore)
        assert in_db.path_for("graph", "f") == "db:model_blobs/a/graph-f.joblib"
        assert DatabaseModelStore(repo).path_for("graph", "f") == "db:model_blobs/graph-f.joblib"
    finally:
        repo.close()
