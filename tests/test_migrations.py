"""Alembic migrations on SQLite and PostgreSQL: empty -> head, previous (with data) -> head,
head -> previous -> base, and the models equal the migrations (autogenerate finds no diff)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect, text

from analysis.maintenance import MaintenanceWindow
from analysis.types import GpuScore, Incident, RootCause
from storage.db import (
    DatabaseURLError,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    normalise_url,
    upgrade,
)
from storage.models import Base
from storage.repository import Repository
from tests.fixtures.postgres import (  # noqa: F401 - pytest fixtures
    PostgresServer,
    create_database,
    db_url,
    postgres_server,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PREVIOUS = "0005"
TABLES_0001 = {
    "incidents",
    "incident_gpus",
    "message_refs",
    "acknowledgements",
    "silences",
    "feedback",
    "scan_runs",
    "runtime_state",
    "leases",
    "outbox",
}
TABLES_0002 = {"scores", "model_versions"}
TABLES_0003 = {"incident_images"}
TABLES_0004 = {"tracker_state", "seen_requests", "model_blobs"}
TABLES_0005 = {"maintenance_windows"}
TABLES_0007 = {"latest_scores"}
PREVIOUS_TABLES = TABLES_0001 | TABLES_0002 | TABLES_0003 | TABLES_0004 | TABLES_0005
ALL_TABLES = PREVIOUS_TABLES | TABLES_0007


def tables(url: str) -> set[str]:
    """Return the application tables in the database."""
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_head_is_0007_and_previous_exists() -> None:
    assert head_revision() == "0007"


def test_upgrade_empty_database_to_head_matches_models(db_url: str) -> None:  # noqa: F811
    assert current_revision(db_url) is None
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    assert tables(db_url) == ALL_TABLES
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()
    upgrade(db_url)  # idempotent at head
    assert current_revision(db_url) == head_revision()


def test_upgrade_previous_revision_with_data_keeps_it(db_url: str) -> None:  # noqa: F811
    upgrade(db_url, PREVIOUS)
    assert current_revision(db_url) == PREVIOUS
    assert tables(db_url) == PREVIOUS_TABLES
    # a previous-revision deployment with an open, posted incident and a pending notification
    inc = Incident(
        "i", T0, "warning", 0.8, RootCause("pdu-a1", "pdu"), (GpuScore("gpu-node-001", "0", 0.8),)
    )
    iid = _previous_deployment(db_url, inc)

    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    repo = Repository.from_url(db_url)
    try:
        rec = repo.incident(iid)  # type: ignore[arg-type]
        assert rec is not None and rec.status == "open" and rec.first_seen == T0
        assert rec.cluster == ""  # rows from before 0006 belong to the one cluster
        assert repo.open_by_key(inc.dedup_key) == rec
        assert repo.scoped("").open_incidents() == [rec]
        assert repo.scoped("b").open_incidents() == []
        assert (rec.incident.dedup_key, rec.incident.gpus) == (inc.dedup_key, inc.gpus)
        assert [o.kind for o in repo.outbox(status="pending")] == ["post", "data_source"]
        # the same root cause in a named cluster is another incident
        (other,) = repo.scoped("b").apply_cycle(T0, [inc], True)
        assert other.incident_id != iid
        assert repo.scoped("b").open_by_key(inc.dedup_key).cluster == "b"  # type: ignore[union-attr]
        assert [s.target for s in repo.active_silences(T0)] == ["gpu-node-009"]
        assert repo.status().data_source == "degraded"
        # the new revision's features work on the upgraded database
        repo.record_scores(T0, [GpuScore("gpu-node-001", "0", 0.8)])
        assert repo.top_gpus(1) == [GpuScore("gpu-node-001", "0", 0.8)]
        repo.save_images(iid, {"graph": b"\x89PNG-g"}, at=T0)  # type: ignore[arg-type]
        assert repo.images(iid) == {"graph": b"\x89PNG-g"}  # type: ignore[arg-type]
        assert repo.remember_request("sig", T0, timedelta(minutes=5))
        assert not repo.remember_request("sig", T0, timedelta(minutes=5))
        window = MaintenanceWindow("rack-a1", timedelta(hours=4), at=time(2, 0), days=("sun",))
        added = repo.add_maintenance(window, "U1", T0)
        assert [r.window for r in repo.maintenance_windows(T0)] == [window]
        assert repo.remove_maintenance(added.id, T0, "U1") is not None
        assert repo.maintenance_windows(T0) == []
    finally:
        repo.close()


def test_upgrade_to_0007_keeps_each_clusters_latest_scores(db_url: str) -> None:  # noqa: F811
    """0006 kept every cycle's scores in ``scores``; 0007 starts ``latest_scores`` with each
    cluster's newest cycle there, so the commands show the same GPUs before the next cycle."""
    upgrade(db_url, "0006")
    engine = make_engine(db_url)
    at = T0 if engine.dialect.name == "postgresql" else T0.replace(tzinfo=None)
    rows = [
        ("", "gpu-node-001/0", at, 0.9),
        ("", "gpu-node-001/0", at + timedelta(minutes=1), 0.2),
        ("", "gpu-node-001/1", at + timedelta(minutes=1), 0.1),
        ("b", "gpu-node-001/0", at, 0.7),
    ]
    try:
        with engine.begin() as conn:
            scores = MetaData()
            scores.reflect(conn, only=["scores"])
            conn.execute(
                scores.tables["scores"].insert(),
                [dict(zip(("cluster", "gpu_key", "at", "score"), r, strict=True)) for r in rows],
            )
    finally:
        engine.dispose()
    upgrade(db_url)
    repo = Repository.from_url(db_url)
    try:
        assert repo.scoped("").top_gpus() == [
            GpuScore("gpu-node-001", "0", 0.2),
            GpuScore("gpu-node-001", "1", 0.1),
        ]
        assert repo.scoped("b").top_gpus() == [GpuScore("gpu-node-001", "0", 0.7)]
        assert len(repo.score_history("gpu-node-001/0")) == 3  # the history is untouched
    finally:
        repo.close()


def _previous_deployment(url: str, inc: Incident) -> int:
    """Rows as the previous revision's code wrote them (its tables, reflected): an open posted
    incident with a pending post, a silence, a failed scan that degraded the source."""
    engine = make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    at = T0 if engine.dialect.name == "postgresql" else T0.replace(tzinfo=None)
    try:
        with engine.begin() as conn:
            iid = conn.execute(
                t["incidents"].insert().values(dedup_key=inc.dedup_key, open_key=inc.dedup_key,
                    kind="pdu", root_cause_id="pdu-a1", status="open", severity="warning",
                    peak_severity="warning", score=0.8, notify_seq=1, last_action="post",
                    first_seen=at, last_seen=at, snapshot=inc.as_dict())
            ).inserted_primary_key[0]  # fmt: skip
            conn.execute(t["incident_gpus"].insert().values(
                incident_id=iid, gpu_key="gpu-node-001/0", node="gpu-node-001", score=0.8))  # fmt: skip
            conn.execute(t["outbox"].insert().values(kind="post", incident_id=iid,
                payload={"incident": inc.as_dict()}, idempotency_key=f"incident:{iid}:1:post",
                status="pending", created_at=at, attempts=0))  # fmt: skip
            conn.execute(t["silences"].insert().values(target="gpu-node-009", who="U1",
                until=at + timedelta(hours=14), reason="rma", created_at=at))  # fmt: skip
            conn.execute(t["scan_runs"].insert().values(
                at=at, ok=False, error="down", duration_s=0.2, gpus_scored=0))  # fmt: skip
            conn.execute(t["runtime_state"].insert().values(
                name="data_source", value="degraded", since=at, counter=1))  # fmt: skip
            conn.execute(t["outbox"].insert().values(kind="data_source", incident_id=None,
                payload={"state": "degraded"}, idempotency_key="data_source:degraded:1",
                status="pending", created_at=at, attempts=0))  # fmt: skip
    finally:
        engine.dispose()
    return int(iid)


def test_downgrade_head_to_previous_to_base(db_url: str) -> None:  # noqa: F811
    upgrade(db_url)
    repo = Repository.from_url(db_url, migrate_schema=False)
    repo.record_scores(T0, [GpuScore("n", "0", 0.1)])
    repo.record_scan(T0, True, 1.0, 1)
    inc = Incident("i", T0, "warning", 0.8, RootCause("n/0", "gpu"), (GpuScore("n", "0", 0.8),))
    iid = repo.apply_cycle(T0, [inc], True)[0].incident_id
    repo.save_images(iid, {"graph": b"png"}, at=T0)  # type: ignore[arg-type]
    repo.add_maintenance(MaintenanceWindow("n", timedelta(hours=1), start=T0), "U1", T0)
    repo.scoped("b").apply_cycle(T0, [inc], True)
    repo.close()
    downgrade(db_url, PREVIOUS)
    assert current_revision(db_url) == PREVIOUS
    assert tables(db_url) == PREVIOUS_TABLES
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:  # the incidents and their GPUs are still there
            assert conn.execute(text("SELECT count(*) FROM incidents")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM incident_gpus")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM incident_images")).scalar() == 1
    finally:
        engine.dispose()
    downgrade(db_url, "0004")
    assert tables(db_url) == TABLES_0001 | TABLES_0002 | TABLES_0003 | TABLES_0004
    downgrade(db_url, "0003")
    assert tables(db_url) == TABLES_0001 | TABLES_0002 | TABLES_0003
    downgrade(db_url, "0002")
    assert tables(db_url) == TABLES_0001 | TABLES_0002
    downgrade(db_url, "0001")
    assert tables(db_url) == TABLES_0001
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:  # 0001 data survived the downgrade
            assert conn.execute(text("SELECT count(*) FROM scan_runs")).scalar() == 1
    finally:
        engine.dispose()
    downgrade(db_url, "base")
    assert current_revision(db_url) is None
    assert tables(db_url) == set()
    upgrade(db_url)  # and back up again
    assert current_revision(db_url) == head_revision()


def test_database_url_errors_are_clear() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(DatabaseURLError, match="unsupported database 'mysql'"):
        normalise_url("mysql://u@h/db")
    with pytest.raises(DatabaseURLError, match="not a database URL"):
        normalise_url("not a url")


def test_sqlite_pragmas(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/p.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_replicas_upgrading_together_do_not_collide(postgres_server: PostgresServer) -> None:  # noqa: F811
    url = create_database(postgres_server)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(url)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert current_revision(url) == head_revision()
