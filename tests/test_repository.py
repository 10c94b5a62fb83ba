"""The state store on SQLite and PostgreSQL: lifecycle persistence, outbox, silences, leader."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError

import storage.records
import storage.repository
from analysis.lifecycle import Action, StoredState, decide_cycle
from analysis.types import Explanation, Factor, GpuScore, Incident, RootCause
from storage.db import make_engine
from storage.leader import AdvisoryLock, LeaseLock, make_leader_lock
from storage.models import IncidentRow
from storage.repository import (
    IncidentNotFoundError,
    MessageRef,
    Repository,
)
from tests.fixtures.postgres import (  # noqa: F401 - pytest fixtures
    db_url,
    postgres_server,
    postgres_url,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
LEASE = timedelta(seconds=30)


def gpu_incident(
    severity: str = "warning", score: float = 0.8, node: str = "gpu-node-001", gpu: str = "3"
) -> Incident:
    """One GPU's incident with an explanation."""
    return Incident(
        id=f"inc-{node}-{gpu}",
        at=T0,
        severity=severity,  # type: ignore[arg-type]
        score=score,
        root_cause=RootCause(f"{node}/{gpu}", "gpu"),
        gpus=(GpuScore(node, gpu, score),),
        explanation=Explanation(
            "GPU 3 runs 14 °C hotter than its peers", (Factor("fan", "FAN2", 0.71),)
        ),
        signals=("thermal_violation",),
    )


def pdu_incident(severity: str = "critical", score: float = 0.9) -> Incident:
    """A rack-wide incident under pdu-a1 (two nodes x two GPUs)."""
    gpus = tuple(GpuScore(f"gpu-node-00{n}", str(g), score) for n in (5, 6) for g in range(2))
    return Incident("inc-pdu", T0, severity, score, RootCause("pdu-a1", "pdu"), gpus)  # type: ignore[arg-type]


@pytest.fixture
def repo(db_url: str) -> Iterator[Repository]:  # noqa: F811
    """A migrated repository on SQLite or PostgreSQL."""
    r = Repository.from_url(db_url)
    yield r
    r.close()


def actions(decisions: list) -> dict[str, Action]:  # type: ignore[type-arg]
    """Map dedup key -> action."""
    return {d.dedup_key: d.action for d in decisions}


def test_whole_life_of_an_incident(repo: Repository) -> None:
    key = "gpu:gpu-node-001/3"
    d = repo.apply_cycle(T0, [gpu_incident()], data_ok=True)
    assert actions(d) == {key: Action.POST}
    iid = d[0].incident_id
    assert iid is not None and d[0].outbox_id is not None

    rec = repo.incident(iid)
    assert rec is not None and rec.status == "open" and rec.severity == "warning"
    assert rec.first_seen == T0 and rec.first_seen.tzinfo is not None  # aware UTC on SQLite too
    assert rec.incident.explanation is not None
    assert rec.incident.explanation.factors[0].entity == "FAN2"

    # unchanged and tiny changes: nothing sent, but last_seen moves
    assert actions(repo.apply_cycle(T0 + MIN, [gpu_incident(score=0.82)], True)) == {
        key: Action.NOOP
    }
    assert repo.incident(iid).last_seen == T0 + MIN  # type: ignore[union-attr]
    # worse
    d = repo.apply_cycle(T0 + 2 * MIN, [gpu_incident("critical", 0.95)], True)
    assert actions(d) == {key: Action.UPDATE} and d[0].previous_severity == "warning"
    # acknowledged: improvements and same-severity rises are quiet
    ack = repo.acknowledge(iid, "U123", T0 + 3 * MIN)
    assert ack.status == "acknowledged" and ack.acknowledged_by == "U123"
    assert actions(repo.apply_cycle(T0 + 4 * MIN, [gpu_incident("warning", 0.5)], True)) == {
        key: Action.NOOP
    }
    # missing data never resolves
    assert actions(repo.apply_cycle(T0 + 5 * MIN, [], data_ok=False)) == {key: Action.NOOP}
    assert repo.incident(iid).status == "acknowledged"  # type: ignore[union-attr]
    # gone with good data: resolved
    d = repo.apply_cycle(T0 + 6 * MIN, [], data_ok=True)
    assert actions(d) == {key: Action.RESOLVE}
    rec = repo.incident(iid)
    assert rec is not None and rec.status == "resolved" and rec.resolved_at == T0 + 6 * MIN
    assert rec.peak_severity == "critical" and rec.severity == "warning"
    assert repo.open_incidents() == []
    # nothing more to say about it
    assert repo.apply_cycle(T0 + 7 * MIN, [], data_ok=True) == []

    kinds = [(o.kind, o.payload["severity"]) for o in repo.outbox(incident_id=iid)]
    assert kinds == [("post", "warning"), ("update", "critical"), ("resolve", "warning")]
    assert [o.idempotency_key for o in repo.outbox(incident_id=iid)] == [
        f"incident:{iid}:1:post",
        f"incident:{iid}:2:update",
        f"incident:{iid}:3:resolve",
    ]
    post = repo.outbox(incident_id=iid)[0]
    assert post.payload["incident"]["root_cause"] == {"id": "gpu-node-001/3", "kind": "gpu"}
    assert Incident.from_dict(post.payload["incident"]).dedup_key == key

    # it comes back: a NEW row, posted again
    d = repo.apply_cycle(T0 + 60 * MIN, [gpu_incident()], True)
    assert actions(d) == {key: Action.POST} and d[0].incident_id != iid
    assert [r.id for r in repo.open_incidents()] == [d[0].incident_id]


def test_acknowledged_pages_again_only_when_severity_rises(repo: Repository) -> None:
    iid = repo.apply_cycle(T0, [gpu_incident("info", 0.5)], True)[0].incident_id
    assert iid is not None
    repo.acknowledge(iid, "U1", T0)
    assert repo.apply_cycle(T0 + MIN, [gpu_incident("info", 0.99)], True)[0].action is Action.NOOP
    d = repo.apply_cycle(T0 + 2 * MIN, [gpu_incident("warning", 0.99)], True)[0]
    assert d.action is Action.UPDATE and d.notify
    assert repo.incident(iid).status == "acknowledged"  # type: ignore[union-attr]
    assert [a for a, _ in repo.acknowledgements(iid)] == ["U1"]


def test_partial_data_does_not_resolve_incidents_on_unobserved_entities(repo: Repository) -> None:
    repo.apply_cycle(T0, [gpu_incident(), pdu_incident()], True)
    d = repo.apply_cycle(T0 + MIN, [], True, unobserved=["gpu-node-006"])
    assert actions(d) == {"gpu:gpu-node-001/3": Action.RESOLVE, "pdu:pdu-a1": Action.NOOP}
    d = repo.apply_cycle(T0 + 2 * MIN, [], True)
    assert actions(d) == {"pdu:pdu-a1": Action.RESOLVE}


def test_one_open_incident_per_dedup_key(repo: Repository) -> None:
    twin = gpu_incident("critical", 0.9)
    d = repo.apply_cycle(T0, [gpu_incident(), twin], True)
    assert len(d) == 1 and d[0].incident is twin  # the worse of two duplicates wins
    repo.apply_cycle(T0 + MIN, [gpu_incident()], True)
    assert len(repo.open_incidents()) == 1
    # the database itself refuses a second open row with the same key
    with pytest.raises(IntegrityError), repo.engine.begin() as conn:
        conn.execute(
            IncidentRow.__table__.insert().values(
                dedup_key="gpu:gpu-node-001/3",
                open_key="gpu:gpu-node-001/3",
                kind="gpu",
                root_cause_id="gpu-node-001/3",
                status="open",
                severity="info",
                peak_severity="info",
                score=0.1,
                notify_seq=0,
                last_action="post",
                first_seen=T0,
                last_seen=T0,
                snapshot={},
            )
        )


def stored_states(repo: Repository) -> dict[str, StoredState]:
    """Read the open rows as the lifecycle sees them (what apply_cycle hands decide_cycle)."""
    with repo.engine.connect() as conn:
        rows = conn.execute(
            select(IncidentRow.__table__).where(IncidentRow.open_key.is_not(None))
        ).all()
    return {
        r.dedup_key: StoredState(
            status=r.status,
            severity=r.severity,
            score=r.score,
            notified_severity=r.notified_severity,
            notified_score=r.notified_score,
            incident=Incident.from_dict(r.snapshot),
        )
        for r in rows
    }


def test_apply_cycle_persists_exactly_what_decide_cycle_decides(repo: Repository) -> None:
    """The store decides nothing: its decisions are decide_cycle's, in the same order."""
    opened = [
        gpu_incident(),
        pdu_incident("warning", 0.5),
        gpu_incident(node="gpu-node-002"),
        gpu_incident(node="gpu-node-003"),
    ]
    repo.apply_cycle(T0, opened, True)
    repo.silence("gpu-node-009", T0 + 60 * MIN, "U1", "maintenance", T0)
    current = [
        gpu_incident(node="gpu-node-009"),  # new, silenced
        pdu_incident("critical", 0.9),  # worse
        gpu_incident("critical", 0.5),  # duplicate key: the worse one below wins
        gpu_incident("critical", 0.7),
    ]
    expected = decide_cycle(
        current,
        stored_states(repo),
        data_ok=True,
        silences=[s.target for s in repo.active_silences(T0 + MIN)],
        unobserved=["gpu-node-003"],
        score_epsilon=repo.score_epsilon,
    )
    got = repo.apply_cycle(T0 + MIN, current, True, unobserved=["gpu-node-003"])
    assert [(d.dedup_key, d.action, d.reason, d.notify) for d in got] == [
        (d.dedup_key, d.action, d.reason, d.notify) for d in expected
    ]
    # current keys in order of first appearance, then the stored ones no longer reported
    assert [(d.dedup_key, d.action) for d in got[:3]] == [
        ("gpu:gpu-node-009/3", Action.SUPPRESS),
        ("pdu:pdu-a1", Action.UPDATE),
        ("gpu:gpu-node-001/3", Action.UPDATE),
    ]
    assert got[2].incident is current[3]
    assert actions(got[3:]) == {
        "gpu:gpu-node-002/3": Action.RESOLVE,
        "gpu:gpu-node-003/3": Action.NOOP,  # unobserved this cycle: stays open
    }
    assert all(d.incident_id is not None for d in got)
    assert [d.outbox_id is not None for d in got] == [d.notify for d in got]


def test_apply_cycle_is_one_transaction(repo: Repository) -> None:
    """A failure while persisting a later decision rolls back the earlier ones too."""
    first, second = gpu_incident(), gpu_incident(node="gpu-node-002")
    with pytest.raises(TypeError):
        repo.apply_cycle(
            T0,
            [first, second],
            True,
            scores=[GpuScore("gpu-node-001", "3", 0.8)],
            images={second.dedup_key: {"bad.png": "not bytes"}},  # type: ignore[dict-item]
        )
    assert repo.open_incidents() == [] and repo.outbox() == [] and repo.top_gpus() == []


def test_repository_reexports_the_records() -> None:
    """Callers import records from storage.repository: they are storage.records' own objects."""
    for name in storage.repository.__all__:
        if name != "Repository":
            assert getattr(storage.repository, name) is getattr(storage.records, name)


def test_silence_suppresses_then_posts_when_lifted(repo: Repository) -> None:
    s = repo.silence("gpu-node-001", T0 + 60 * MIN, "U9", "maintenance", at=T0)
    assert s.until == T0 + 60 * MIN and s.until.tzinfo is not None
    assert [x.target for x in repo.active_silences(T0 + MIN)] == ["gpu-node-001"]
    assert repo.is_silenced(gpu_incident(), T0 + MIN)
    assert not repo.is_silenced(pdu_incident(), T0 + MIN)

    d = repo.apply_cycle(T0, [gpu_incident(), pdu_incident()], True)
    assert actions(d) == {"gpu:gpu-node-001/3": Action.SUPPRESS, "pdu:pdu-a1": Action.POST}
    gpu_id = next(x.incident_id for x in d if x.action is Action.SUPPRESS)
    assert repo.outbox(incident_id=gpu_id) == []
    assert repo.incident(gpu_id).status == "open"  # type: ignore[union-attr]  # recorded

    assert repo.unsilence("gpu-node-001", at=T0 + 2 * MIN, who="U9") == 1
    assert repo.active_silences(T0 + 2 * MIN) == []
    d = repo.apply_cycle(T0 + 3 * MIN, [gpu_incident(), pdu_incident()], True)
    assert actions(d) == {"gpu:gpu-node-001/3": Action.POST, "pdu:pdu-a1": Action.NOOP}
    assert [o.kind for o in repo.outbox(incident_id=gpu_id)] == ["post"]


def test_silence_expires_and_resolving_a_never_posted_incident_is_quiet(repo: Repository) -> None:
    repo.silence("pdu:pdu-a1", T0 + 5 * MIN, "U9", "", at=T0)
    assert repo.active_silences(T0 + 5 * MIN) == []  # until is exclusive
    d = repo.apply_cycle(T0, [pdu_incident()], True)[0]
    assert d.action is Action.SUPPRESS
    d = repo.apply_cycle(T0 + MIN, [], True)[0]
    assert d.action is Action.RESOLVE and not d.notify and d.outbox_id is None
    assert repo.outbox() == []


def test_silence_input_errors(repo: Repository) -> None:
    with pytest.raises(ValueError, match="not after"):
        repo.silence("x", T0, "U", "", at=T0)
    with pytest.raises(ValueError, match="empty"):
        repo.silence(" ", T0 + MIN, "U", "", at=T0)
    with pytest.raises(ValueError, match="aware UTC"):
        repo.silence("x", datetime(2026, 1, 2), "U", "", at=T0)


def test_latest_for_node_gpu_and_component(repo: Repository) -> None:
    repo.apply_cycle(T0, [gpu_incident(), pdu_incident()], True)
    assert [r.dedup_key for r in repo.latest_for("gpu-node-001")] == ["gpu:gpu-node-001/3"]
    assert [r.dedup_key for r in repo.latest_for("gpu-node-001/3")] == ["gpu:gpu-node-001/3"]
    assert [r.dedup_key for r in repo.latest_for("gpu-node-006/1")] == ["pdu:pdu-a1"]
    assert [r.dedup_key for r in repo.latest_for("pdu-a1")] == ["pdu:pdu-a1"]
    assert repo.latest_for("gpu-node-099") == []
    # resolved ones still answer "why", after open ones
    repo.apply_cycle(T0 + MIN, [pdu_incident()], True)
    repo.apply_cycle(T0 + 2 * MIN, [gpu_incident(node="gpu-node-005", gpu="0")], True)
    found = repo.latest_for("gpu-node-005")
    assert [(r.dedup_key, r.status) for r in found] == [
        ("gpu:gpu-node-005/0", "open"),
        ("pdu:pdu-a1", "resolved"),
    ]
    # open_incidents: most severe first
    assert [r.dedup_key for r in repo.open_incidents()] == ["gpu:gpu-node-005/0"]


def test_feedback_ack_and_unknown_ids(repo: Repository) -> None:
    iid = repo.apply_cycle(T0, [gpu_incident()], True)[0].incident_id
    assert iid is not None
    fb = repo.record_feedback(iid, "false_alarm", "U7", T0 + MIN, note="fan test")
    assert (fb.verdict, fb.who, fb.at) == ("false_alarm", "U7", T0 + MIN)
    assert [f.verdict for f in repo.feedback(iid)] == ["false_alarm"]
    with pytest.raises(ValueError, match="unknown verdict"):
        repo.record_feedback(iid, "meh", "U7", T0)
    with pytest.raises(IncidentNotFoundError):
        repo.acknowledge(424242, "U1", T0)
    with pytest.raises(IncidentNotFoundError):
        repo.record_feedback(424242, "confirmed", "U1", T0)
    with pytest.raises(ValueError, match="aware UTC"):
        repo.apply_cycle(datetime(2026, 1, 1), [], True)


def test_outbox_claim_send_fail_retry_and_order(repo: Repository) -> None:
    iid = repo.apply_cycle(T0, [gpu_incident()], True)[0].incident_id
    repo.apply_cycle(T0 + MIN, [gpu_incident("critical", 0.95)], True)
    assert iid is not None
    # the update must not overtake the post
    first = repo.claim_pending(10, "w1", LEASE, at=T0 + MIN)
    assert [o.kind for o in first] == ["post"] and first[0].attempts == 1
    assert repo.claim_pending(10, "w2", LEASE, at=T0 + MIN) == []  # leased, update blocked
    # a failed send is retried at retry_at, not before
    repo.mark_failed(first[0].id, "slack 500", T0 + 2 * MIN, at=T0 + MIN)
    assert repo.claim_pending(10, "w2", LEASE, at=T0 + MIN) == []
    again = repo.claim_pending(10, "w2", LEASE, at=T0 + 2 * MIN)
    assert [(o.id, o.attempts, o.last_error) for o in again] == [(first[0].id, 2, "slack 500")]
    ref = MessageRef("C1", "1700000000.000100", None)
    assert repo.mark_sent(again[0].id, at=T0 + 2 * MIN, message_ref=ref, worker_id="w2")
    assert not repo.mark_sent(again[0].id, at=T0 + 2 * MIN)  # idempotent
    assert repo.message_ref(iid) == ref
    assert repo.incident(iid).message_ref == ref  # type: ignore[union-attr]
    # now the update is free; give up on it after failures
    upd = repo.claim_pending(10, "w1", LEASE, at=T0 + 2 * MIN)
    assert [o.kind for o in upd] == ["update"]
    repo.mark_failed(upd[0].id, "channel_not_found", None, at=T0 + 2 * MIN)
    assert [o.status for o in repo.outbox(incident_id=iid)] == ["sent", "dead"]
    assert repo.claim_pending(10, "w1", LEASE, at=T0 + 10 * MIN) == []
    assert repo.status().pending_notifications == 0


def test_enqueue_is_idempotent_and_set_message_ref_upserts(repo: Repository) -> None:
    iid = repo.apply_cycle(T0, [gpu_incident()], True)[0].incident_id
    assert iid is not None
    first = repo.enqueue("digest", None, {"n": 1}, "digest:2026-11-22", at=T0)
    assert first is not None
    assert repo.enqueue("digest", None, {"n": 2}, "digest:2026-11-22", at=T0) is None
    assert [o.payload for o in repo.outbox(status="pending") if o.kind == "digest"] == [{"n": 1}]
    repo.set_message_ref(iid, "C1", "1.1", at=T0)
    repo.set_message_ref(iid, "C1", "1.2", "1.2", at=T0)
    repo.set_message_ref(iid, "C2", "2.1", at=T0)
    assert repo.message_ref(iid) == MessageRef("C1", "1.2", "1.2")
    assert repo.message_ref(iid, "C2") == MessageRef("C2", "2.1")
    with pytest.raises(IncidentNotFoundError):
        repo.set_message_ref(999999, "C1", "1", at=T0)


def test_crash_after_commit_sends_once_after_restart(db_url: str) -> None:  # noqa: F811
    """Commit, die before sending (or after claiming): the restarted worker sends exactly once."""
    r1 = Repository.from_url(db_url)
    r1.apply_cycle(T0, [gpu_incident(), pdu_incident()], True)
    claimed = r1.claim_pending(10, "replica-1", LEASE, at=T0)
    assert len(claimed) == 2
    r1.close()  # "crash": claimed, never confirmed

    r2 = Repository.from_url(db_url)
    assert r2.claim_pending(10, "replica-2", LEASE, at=T0 + LEASE / 2) == []  # lease still runs
    retry = r2.claim_pending(10, "replica-2", LEASE, at=T0 + LEASE)
    assert sorted(o.id for o in retry) == sorted(o.id for o in claimed)
    assert all(o.attempts == 2 and o.is_retry for o in retry)  # notifier reconciles first
    assert not any(o.is_retry for o in claimed)
    for o in retry:
        r2.mark_sent(o.id, at=T0 + LEASE, message_ref=MessageRef("C1", f"{o.id}.0"))
    assert r2.claim_pending(10, "replica-2", LEASE, at=T0 + 10 * LEASE) == []
    # the same cycle replayed after restart does not enqueue anything new
    r2.apply_cycle(T0 + MIN, [gpu_incident(), pdu_incident()], True)
    assert len(r2.outbox()) == 2
    r2.close()


def test_concurrent_claimers_never_share_a_row(db_url: str) -> None:  # noqa: F811
    """Two replicas (own engines, own threads) drain the outbox; every row goes to exactly one."""
    setup = Repository.from_url(db_url)
    for i in range(60):
        setup.enqueue("digest", None, {"i": i}, f"k{i}", at=T0)
    workers = [Repository.from_url(db_url, migrate_schema=False) for _ in range(2)]
    got: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def drain(name: str, r: Repository) -> None:
        try:
            barrier.wait()
            while True:
                batch = r.claim_pending(3, name, timedelta(hours=1), at=T0)
                if not batch:
                    return
                got[name].extend(o.id for o in batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=drain, args=(n, w)) for n, w in zip("ab", workers, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert not set(got["a"]) & set(got["b"])
    assert len(got["a"]) + len(got["b"]) == 60
    assert sorted(got["a"] + got["b"]) == [o.id for o in setup.outbox()]
    for r in (setup, *workers):
        r.close()


def test_data_source_degraded_is_raised_once(db_url: str) -> None:  # noqa: F811
    repo = Repository.from_url(db_url, degrade_after=2)
    assert repo.status().data_source == "unknown"
    assert repo.record_scan(T0, True, 1.5, 16) is None
    assert repo.record_scan(T0 + MIN, False, 0.1, 0, "connection refused") is None
    assert repo.record_scan(T0 + 2 * MIN, False, 0.1, 0, "connection refused") == "degraded"
    for i in range(3, 6):
        assert repo.record_scan(T0 + i * MIN, False, 0.1, 0, "connection refused") is None
    st = repo.status()
    assert st.data_source == "degraded" and st.data_source_since == T0 + 2 * MIN
    assert st.consecutive_failures == 5
    assert st.last_scan is not None and st.last_scan.at == T0 + 5 * MIN and not st.last_scan.ok
    assert st.last_ok_scan is not None and st.last_ok_scan.at == T0
    assert st.last_scan.error == "connection refused"
    assert repo.record_scan(T0 + 6 * MIN, True, 1.2, 16) == "recovered"
    assert repo.record_scan(T0 + 7 * MIN, True, 1.2, 16) is None
    events = [o.payload["change"] for o in repo.outbox() if o.kind == "data_source"]
    assert events == ["degraded", "recovered"]
    assert repo.status().data_source == "ok"
    assert [s.at for s in repo.scans(2)] == [T0 + 7 * MIN, T0 + 6 * MIN]
    repo.close()


def test_scores_top_gpus_and_retention(repo: Repository) -> None:
    assert repo.top_gpus(3) == []
    old = [GpuScore("gpu-node-001", str(g), 0.9) for g in range(4)]
    new = [GpuScore("gpu-node-002", str(g), g / 10) for g in range(4)]
    repo.record_scores(T0, old)
    repo.apply_cycle(T0 + 60 * MIN, [], True, scores=new)
    assert repo.top_gpus(2) == [
        GpuScore("gpu-node-002", "3", 0.3),
        GpuScore("gpu-node-002", "2", 0.2),
    ]
    assert repo.score_history("gpu-node-001/0") == [(T0, 0.9)]
    assert repo.score_history("gpu-node-002/3") == []  # 0.3: below the history's 0.5
    assert repo.prune_scores(T0 + 30 * MIN) == 4
    assert repo.score_history("gpu-node-001/0") == []
    assert len(repo.top_gpus(10)) == 4  # the latest cycle is newer than the cut: kept
    assert repo.prune_scores(T0 + 90 * MIN) == 0  # a cluster not scored since the cut
    assert repo.top_gpus(10) == []


def test_scores_latest_cycle_for_every_gpu_history_for_gpus_at_risk(repo: Repository) -> None:
    """Every cycle replaces every GPU's latest score; the history grows only by the GPUs at
    least ``score_history_min`` (at 100,000 GPUs a cycle a minute, 144 million rows a day)."""
    fleet = [GpuScore(f"gpu-node-{n:03d}", str(g), 0.05) for n in range(50) for g in range(8)]
    for cycle in range(10):
        hot = GpuScore("gpu-node-007", "3", round(0.4 + cycle / 20, 2))  # 0.40 ... 0.85
        scores = [hot if g.key == hot.key else g for g in fleet]
        written = repo.apply_cycle(T0 + cycle * MIN, [], True, scores=scores)
        assert written == []
    assert len(repo.top_gpus(1000)) == 400
    assert repo.top_gpus(1) == [GpuScore("gpu-node-007", "3", 0.85)]
    with repo.engine.connect() as conn:  # the tables' sizes are the point
        assert conn.execute(text("SELECT count(*) FROM scores")).scalar() == 8  # 0.50 ... 0.85
        assert conn.execute(text("SELECT count(*) FROM latest_scores")).scalar() == 400
    assert [a for a, _ in repo.score_history("gpu-node-007/3")] == [
        T0 + c * MIN for c in range(2, 10)
    ]
    assert repo.record_scores(T0 + 11 * MIN, []) == 0  # a cycle that scored nothing
    assert len(repo.top_gpus(1000)) == 400


def test_score_history_min_zero_keeps_every_score(tmp_path: Path) -> None:
    repo = Repository.from_url(f"sqlite:///{tmp_path / 's.db'}", score_history_min=0.0)
    try:
        scores = [GpuScore("gpu-node-001", str(g), g / 10) for g in range(4)]
        assert repo.record_scores(T0, scores) == 4
        assert repo.record_scores(T0 + MIN, scores) == 4
        assert repo.score_history("gpu-node-001/0") == [(T0, 0.0), (T0 + MIN, 0.0)]
        assert repo.scoped("b").score_history_min == 0.0
    finally:
        repo.close()
    with pytest.raises(ValueError, match=r"score_history_min must be a risk in \[0, 1\]"):
        Repository.from_url("sqlite://", score_history_min=1.5)


def test_model_versions_and_status(repo: Repository) -> None:
    assert repo.status().model is None
    repo.record_model(
        name="iforest",
        fleet_fingerprint="fp-a",
        features=["temp_peer_dev", "ecc_rate"],
        version="1",
        path="models/a.joblib",
        fitted_at=T0,
        metrics={"train_rows": 1000},
    )
    repo.record_model(
        name="iforest",
        fleet_fingerprint="fp-b",
        features=["temp_peer_dev"],
        version="1",
        path="models/b.joblib",
        fitted_at=T0 + 60 * MIN,
    )
    latest = repo.latest_model(name="iforest")
    assert latest is not None and latest.fleet_fingerprint == "fp-b"
    a = repo.latest_model(fleet_fingerprint="fp-a")
    assert a is not None and a.features == ("temp_peer_dev", "ecc_rate")
    assert a.metrics == {"train_rows": 1000} and a.fitted_at == T0
    assert repo.latest_model(fleet_fingerprint="fp-zzz") is None
    st = repo.status()
    assert st.model_age(T0 + 90 * MIN) == timedelta(minutes=30)
    repo.apply_cycle(T0, [gpu_incident(), pdu_incident()], True)
    repo.acknowledge(repo.open_incidents()[0].id, "U1", T0)
    st = repo.status()
    assert (st.open_incidents, st.acknowledged_incidents, st.pending_notifications) == (2, 1, 2)


# ---------------------------------------------------------------------- leader election


def test_lease_lock_one_leader_and_takeover_after_expiry(db_url: str) -> None:  # noqa: F811
    Repository.from_url(db_url).close()  # migrate
    engine = make_engine(db_url)
    a = LeaseLock(engine, "replica-a", ttl=timedelta(seconds=60))
    b = LeaseLock(engine, "replica-b", ttl=timedelta(seconds=60))
    assert a.try_acquire(T0)
    assert not b.try_acquire(T0 + timedelta(seconds=10))
    assert a.try_acquire(T0 + timedelta(seconds=50))  # renewal
    assert not b.try_acquire(T0 + timedelta(seconds=100))  # renewed until 110 s
    assert a.current_holder(T0 + timedelta(seconds=100)) == "replica-a"
    assert b.try_acquire(T0 + timedelta(seconds=110))  # a died: lease ran out
    assert not a.try_acquire(T0 + timedelta(seconds=111))
    b.release(T0 + timedelta(seconds=112))
    assert a.try_acquire(T0 + timedelta(seconds=112))  # released: immediate takeover
    engine.dispose()


def test_make_leader_lock_picks_by_backend(db_url: str) -> None:  # noqa: F811
    engine = make_engine(db_url)
    lock = make_leader_lock(engine, "me")
    expected = AdvisoryLock if engine.dialect.name == "postgresql" else LeaseLock
    assert isinstance(lock, expected)
    if isinstance(lock, AdvisoryLock):
        lock.close()
    engine.dispose()


@pytest.mark.postgres
def test_advisory_lock_single_winner_release_and_death(postgres_url: str) -> None:  # noqa: F811
    engine = make_engine(postgres_url)
    a = AdvisoryLock(engine, "replica-a")
    b = AdvisoryLock(engine, "replica-b")
    try:
        assert a.try_acquire(T0)
        assert a.try_acquire(T0)  # still ours
        assert not b.try_acquire(T0)
        a.release(T0)
        assert not a.is_held()
        assert b.try_acquire(T0)
        assert not a.try_acquire(T0)
        # b "dies": its session is killed server-side; the lock goes with it
        with engine.connect() as admin:
            pid = admin.execute(
                text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted")
            ).scalar_one()  # only b holds an advisory lock now
            admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        assert a.try_acquire(T0)
        assert not b.is_held()  # b notices it lost leadership
        assert not b.try_acquire(T0)
        # closing the connection (process exit) releases too
        a.close()
        assert b.try_acquire(T0)
    finally:
        a.close()
        b.close()
        engine.dispose()


def test_update_sent_as_fresh_message_becomes_the_incident_message(repo: Repository) -> None:
    """When a post died (dead row), the notifier posts the update anew: that ref is kept."""
    iid = repo.apply_cycle(T0, [gpu_incident()], True)[0].incident_id
    repo.apply_cycle(T0 + MIN, [gpu_incident("critical")], True)
    assert iid is not None
    post = repo.claim_pending(5, "w", LEASE, at=T0 + MIN)[0]
    repo.mark_failed(post.id, "is_archived", None, at=T0 + MIN)
    upd = repo.claim_pending(5, "w", LEASE, at=T0 + MIN)[0]
    assert upd.kind == "update" and repo.message_ref(iid) is None
    repo.mark_sent(upd.id, at=T0 + MIN, message_ref=MessageRef("C1", "9.9"))
    assert repo.message_ref(iid) == MessageRef("C1", "9.9")


def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """WAL + deferred read transactions: a Slack command reads while a scan holds the write lock."""
    url = f"sqlite:///{tmp_path / 'rw.db'}"
    Repository.from_url(url).close()
    engine = make_engine(url, busy_timeout_ms=200)
    repo = Repository(engine)
    repo.apply_cycle(T0, [gpu_incident()], True)
    with engine.begin() as writer:  # BEGIN IMMEDIATE: holds the write lock
        writer.execute(text("UPDATE incidents SET score = 0.5"))
        assert [r.score for r in repo.open_incidents()] == [0.8]  # snapshot, no wait
        assert repo.status().open_incidents == 1
        with pytest.raises(OperationalError, match="locked"):  # a second writer does wait
            repo.record_scan(T0, True, 1.0, 1)
    assert [r.score for r in repo.open_incidents()] == [0.5]
    engine.dispose()


def test_remember_request_is_true_once_within_ttl_then_prunes(repo: Repository) -> None:
    ttl = timedelta(minutes=5)
    assert repo.remember_request("v0=abc", T0, ttl) is True
    assert repo.remember_request("v0=abc", T0 + MIN, ttl) is False
    assert repo.remember_request("v0=other", T0 + MIN, ttl) is True
    # once older than ttl the row is pruned and the signature counts as new again
    assert repo.remember_request("v0=abc", T0 + ttl + MIN, ttl) is True
    long = "x" * 400
    assert repo.remember_request(long, T0, ttl) is True
    assert repo.remember_request(long, T0, ttl) is False


def test_remember_request_between_replicas_has_one_winner(db_url: str) -> None:  # noqa: F811
    repos = [Repository.from_url(db_url, migrate_schema=not i) for i in range(4)]
    barrier = threading.Barrier(4)
    results: list[bool] = []
    errors: list[BaseException] = []

    def run(r: Repository) -> None:
        try:
            barrier.wait()
            results.append(r.remember_request("sig", T0, timedelta(minutes=5)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in repos]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(results) == [False, False, False, True]
    for r in repos:
        r.close()


def test_tracker_state_is_stored_with_the_cycle_and_round_trips(repo: Repository) -> None:
    from analysis.tracker import IncidentTracker
    from analysis.types import Assessment

    assert repo.tracker_state("alerts") is None
    tracker = IncidentTracker(open_after=3)
    inc = gpu_incident()
    tracker.update(Assessment(T0, (), (inc,)))
    tracker.update(Assessment(T0 + MIN, (), (inc,)))
    repo.apply_cycle(T0 + MIN, [], True, tracker=("alerts", tracker.state()))
    stored = repo.tracker_state("alerts")
    assert stored is not None
    assert (stored["streak"], stored["first"], stored["quiet"]) == (
        {inc.dedup_key: 2}, {inc.dedup_key: T0.isoformat()}, {}
    )  # fmt: skip
    resumed = IncidentTracker(open_after=3)
    resumed.load_state(stored)
    (opened,) = resumed.update(Assessment(T0 + 2 * MIN, (), (inc,)))
    fresh = IncidentTracker(open_after=3)
    fresh.update(Assessment(T0, (), (inc,)))
    fresh.update(Assessment(T0 + MIN, (), (inc,)))
    (same,) = fresh.update(Assessment(T0 + 2 * MIN, (), (inc,)))
    assert opened.id == same.id  # one process or two: the same incident id


def test_models_live_with_the_state_never_in_the_working_directory(
    repo: Repository, tmp_path: Path
) -> None:
    from storage.model_store import (
        DatabaseModelStore,
        ModelStore,
        default_model_dir,
        model_store_for,
    )

    assert default_model_dir(f"sqlite:///{tmp_path}/x.db") == tmp_path / "models"
    assert default_model_dir("sqlite:///state.db") == Path.cwd() / "models"  # relative URL
    assert default_model_dir("sqlite://") is None  # in memory: in the database
    assert default_model_dir("postgresql+psycopg://u@h/db") is None
    explicit = model_store_for(tmp_path / "m", "postgresql://u@h/db", repo)
    assert isinstance(explicit, ModelStore) and explicit.directory == tmp_path / "m"
    store = model_store_for(None, "postgresql://u@h/db", repo)
    assert isinstance(store, DatabaseModelStore)
    # the blobs round-trip through the state database (what a new leader reads)
    assert repo.model_blob("db:model_blobs/x") is None
    repo.save_model_blob("db:model_blobs/x", b"one", at=T0)
    repo.save_model_blob("db:model_blobs/x", b"two", at=T0 + MIN)
    assert repo.model_blob("db:model_blobs/x") == b"two"
