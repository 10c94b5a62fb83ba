"""The pure lifecycle table: every (current, stored, data_ok, silenced) case, whole cycles
(``decide_cycle``: silences, unobserved entities, duplicates, order) and silence matching."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from analysis.lifecycle import (
    NOTIFYING_ACTIONS,
    Action,
    StoredState,
    decide,
    decide_cycle,
    max_severity,
    severity_rank,
    silence_matches,
)
from analysis.types import GpuScore, Incident, RootCause

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def inc(severity: str = "warning", score: float = 0.8, rc: str = "gpu-node-001/3") -> Incident:
    """An incident on one GPU (or a component when ``rc`` has no slash)."""
    if "/" in rc:
        node, _, gpu = rc.rpartition("/")
        return Incident(
            "i1",
            AT,
            severity,
            score,
            RootCause(rc, "gpu"),
            (GpuScore(node, gpu, score),),  # type: ignore[arg-type]
        )
    gpus = tuple(GpuScore(f"gpu-node-00{n}", str(g), score) for n in (1, 2) for g in range(2))
    return Incident("i2", AT, severity, score, RootCause(rc, "pdu"), gpus)  # type: ignore[arg-type]


def stored(
    status: str = "open",
    severity: str = "warning",
    score: float = 0.8,
    notified: str | None = "warning",
    notified_score: float | None = 0.8,
) -> StoredState:
    """A stored state; ``notified=None`` = never posted."""
    return StoredState(
        status=status,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        score=score,
        notified_severity=notified,  # type: ignore[arg-type]
        notified_score=notified_score if notified else None,
        incident=inc(severity, score),
    )


# (name, current, stored, data_ok, silenced, expected action, expected notify)
CASES = [
    ("nothing at all", None, None, True, False, Action.NOOP, False),
    ("nothing, resolved stored", None, stored("resolved"), True, False, Action.NOOP, False),
    ("new incident", inc(), None, True, False, Action.POST, True),
    ("new incident on bad data", inc(), None, False, False, Action.POST, True),
    ("new but silenced", inc(), None, True, True, Action.SUPPRESS, False),
    ("reappears after resolve", inc(), stored("resolved"), True, False, Action.POST, True),
    ("gone, good data", None, stored(), True, False, Action.RESOLVE, True),
    ("gone, missing data", None, stored(), False, False, Action.NOOP, False),
    ("gone, ack, missing data", None, stored("acknowledged"), False, False, Action.NOOP, False),
    ("gone, ack, good data", None, stored("acknowledged"), True, False, Action.RESOLVE, True),
    ("gone, never posted", None, stored(notified=None), True, False, Action.RESOLVE, False),
    ("gone while silenced, posted", None, stored(), True, True, Action.RESOLVE, True),
    ("unchanged", inc(), stored(), True, False, Action.NOOP, False),
    ("tiny rise", inc(score=0.85), stored(), True, False, Action.NOOP, False),
    ("tiny fall", inc(score=0.75), stored(), True, False, Action.NOOP, False),
    ("exactly epsilon", inc(score=0.9), stored(), True, False, Action.NOOP, False),
    ("score rose", inc(score=0.95), stored(), True, False, Action.UPDATE, True),
    ("score fell", inc(score=0.6), stored(), True, False, Action.IMPROVE, True),
    ("severity rose", inc("critical", 0.8), stored(), True, False, Action.UPDATE, True),
    ("severity rose, score fell", inc("critical", 0.5), stored(), True, False, Action.UPDATE, True),
    ("severity fell", inc("info", 0.8), stored(), True, False, Action.IMPROVE, True),
    ("severity fell, score rose", inc("info", 0.99), stored(), True, False, Action.IMPROVE, True),
    ("open, silenced, worse", inc("critical"), stored(), True, True, Action.SUPPRESS, False),
    ("ack, unchanged", inc(), stored("acknowledged"), True, False, Action.NOOP, False),
    ("ack, score rose", inc(score=0.99), stored("acknowledged"), True, False, Action.NOOP, False),
    ("ack, better", inc("info", 0.3), stored("acknowledged"), True, False, Action.NOOP, False),
    (
        "ack, severity rose",
        inc("critical"),
        stored("acknowledged"),
        True,
        False,
        Action.UPDATE,
        True,
    ),
    (
        "ack, silenced, worse",
        inc("critical"),
        stored("acknowledged"),
        True,
        True,
        Action.SUPPRESS,
        False,
    ),
    ("never posted, silence lifted", inc(), stored(notified=None), True, False, Action.POST, True),
    (
        "never posted, still silenced",
        inc(),
        stored(notified=None),
        True,
        True,
        Action.SUPPRESS,
        False,
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c[1:], id=c[0]) for c in CASES])
def test_decide_table(case: tuple) -> None:  # type: ignore[type-arg]
    current, state, data_ok, silenced, action, notify = case
    d = decide(current, state, data_ok=data_ok, silenced=silenced, dedup_key="gpu:gpu-node-001/3")
    assert (d.action, d.notify) == (action, notify), d.reason
    assert d.dedup_key == "gpu:gpu-node-001/3"
    assert d.notify == (d.action in NOTIFYING_ACTIONS and d.notify)
    if current is not None:
        assert d.incident is current
    if d.action is Action.RESOLVE:
        assert d.incident is not None and d.incident.dedup_key == "gpu:gpu-node-001/3"


def test_every_combination_is_decided_and_missing_data_never_resolves() -> None:
    """Exhaustive sweep: always a decision; never RESOLVE without good data; never post silenced."""
    currents = [
        None,
        *(inc(sev, sc) for sev in ("info", "warning", "critical") for sc in (0.2, 0.8)),
    ]
    states: list[StoredState | None] = [None]
    for status, sev, notified in itertools.product(
        ("open", "acknowledged", "resolved"),
        ("info", "warning", "critical"),
        (None, "info", "warning", "critical"),
    ):
        states.append(stored(status, sev, 0.5, notified, 0.5))
    seen = set()
    for current, state, data_ok, silenced in itertools.product(
        currents, states, (True, False), (True, False)
    ):
        d = decide(
            current, state, data_ok=data_ok, silenced=silenced, dedup_key="gpu:gpu-node-001/3"
        )
        seen.add(d.action)
        if not data_ok:
            assert d.action is not Action.RESOLVE
        if silenced and current is not None:
            assert d.action is Action.SUPPRESS and not d.notify
        if current is None:
            assert d.action in (Action.NOOP, Action.RESOLVE)
        if state is not None and state.status == "acknowledged" and current is not None:
            rose = state.notified_severity is not None and severity_rank(
                current.severity
            ) > severity_rank(state.notified_severity)
            if not silenced and state.posted:
                assert (d.action is Action.UPDATE) == rose
                assert d.action in (Action.UPDATE, Action.NOOP)
    assert seen == set(Action)


def test_slow_creep_is_measured_from_last_notification() -> None:
    """A score creeping up by less than epsilon per cycle still updates once it adds up."""
    state = stored(score=0.84, notified_score=0.7)
    assert decide(inc(score=0.85), state, data_ok=True).action is Action.UPDATE
    state = stored(score=0.78, notified_score=0.7)
    assert decide(inc(score=0.79), state, data_ok=True).action is Action.NOOP


def test_epsilon_is_configurable_and_validated() -> None:
    assert (
        decide(inc(score=0.82), stored(), data_ok=True, score_epsilon=0.01).action is Action.UPDATE
    )
    with pytest.raises(ValueError, match="score_epsilon"):
        decide(inc(), stored(), data_ok=True, score_epsilon=-1)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown severity 'fatal'"):
        decide(inc("fatal"), None, data_ok=True)
    with pytest.raises(ValueError, match="needs a current incident"):
        decide(None, None, data_ok=True)
    with pytest.raises(ValueError, match="does not match"):
        decide(inc(), None, data_ok=True, dedup_key="pdu:pdu-a1")


def test_severity_order() -> None:
    assert severity_rank("info") < severity_rank("warning") < severity_rank("critical")
    assert max_severity("info", "critical") == "critical"
    assert max_severity("warning", "info") == "warning"


@pytest.mark.parametrize(
    ("target", "gpu_incident", "pdu_incident"),
    [
        ("gpu:gpu-node-001/3", True, False),
        ("gpu-node-001/3", True, False),
        ("gpu-node-001", True, True),
        ("gpu-node-002", False, True),
        ("gpu-node-002/1", False, True),
        ("pdu-a1", False, True),
        ("pdu:pdu-a1", False, True),
        ("pdu-a2", False, False),
        ("gpu-node-00", False, False),
        ("  ", False, False),
    ],
)
def test_silence_matches(target: str, gpu_incident: bool, pdu_incident: bool) -> None:
    assert silence_matches(inc(), target) is gpu_incident
    assert silence_matches(inc(rc="pdu-a1"), target) is pdu_incident


GPU = "gpu:gpu-node-001/3"
GPU2 = "gpu:gpu-node-003/0"
PDU = "pdu:pdu-a1"  # GPUs 0 and 1 of gpu-node-001 and gpu-node-002


def stored_at(rc: str, status: str = "open") -> StoredState:
    """A stored, posted incident whose snapshot has root cause ``rc`` (see ``inc``)."""
    return replace(stored(status), incident=inc(rc=rc))


def stored_pdu(status: str = "open") -> StoredState:
    """A stored, posted rack incident under pdu-a1."""
    return stored_at("pdu-a1", status)


# (name, current, stored, data_ok, silences, unobserved, expected [(dedup key, action)])
CYCLE_CASES = [
    ("nothing", [], {}, True, (), (), []),
    ("new incident", [inc()], {}, True, (), (), [(GPU, Action.POST)]),
    ("new on bad data still posts", [inc()], {}, False, (), (), [(GPU, Action.POST)]),
    ("silenced by its GPU", [inc()], {}, True, ("gpu-node-001/3",), (), [(GPU, Action.SUPPRESS)]),
    ("silenced by its node", [inc()], {}, True, ("gpu-node-001",), (), [(GPU, Action.SUPPRESS)]),
    ("silence elsewhere", [inc()], {}, True, ("gpu-node-002",), (), [(GPU, Action.POST)]),
    (
        "rack silenced by one of its nodes",
        [inc(rc="pdu-a1")],
        {},
        True,
        ("gpu-node-002",),
        (),
        [(PDU, Action.SUPPRESS)],
    ),
    (
        "open and silenced",
        [inc("critical")],
        {GPU: stored()},
        True,
        ("gpu-node-001",),
        (),
        [(GPU, Action.SUPPRESS)],
    ),
    ("stored, absent, good data", [], {GPU: stored()}, True, (), (), [(GPU, Action.RESOLVE)]),
    (
        "stored, absent, silenced: resolves anyway",
        [],
        {GPU: stored()},
        True,
        ("gpu-node-001",),
        (),
        [(GPU, Action.RESOLVE)],
    ),
    (
        "data_ok=False resolves nothing",
        [],
        {GPU: stored(), PDU: stored_pdu(), GPU2: stored_at("gpu-node-003/0", "acknowledged")},
        False,
        (),
        (),
        [(GPU, Action.NOOP), (PDU, Action.NOOP), (GPU2, Action.NOOP)],
    ),
    (
        "its GPU unobserved: stays open",
        [],
        {GPU: stored()},
        True,
        (),
        ("gpu-node-001/3",),
        [(GPU, Action.NOOP)],
    ),
    (
        "its node unobserved: stays open",
        [],
        {GPU: stored()},
        True,
        (),
        ("gpu-node-001",),
        [(GPU, Action.NOOP)],
    ),
    (
        "another node unobserved: resolves",
        [],
        {GPU: stored()},
        True,
        (),
        ("gpu-node-002",),
        [(GPU, Action.RESOLVE)],
    ),
    (
        "one GPU of a rack unobserved: rack stays open, the rest resolves",
        [],
        {PDU: stored_pdu(), GPU2: stored_at("gpu-node-003/0")},
        True,
        (),
        ("gpu-node-002/1",),
        [(PDU, Action.NOOP), (GPU2, Action.RESOLVE)],
    ),
    (
        "no stored snapshot: unobserved cannot hold it",
        [],
        {GPU: replace(stored(), incident=None)},
        True,
        (),
        ("gpu-node-001",),
        [(GPU, Action.RESOLVE)],
    ),
    (
        "reported while unobserved elsewhere: decided on its own",
        [inc(score=0.99)],
        {GPU: stored()},
        True,
        (),
        ("gpu-node-001",),
        [(GPU, Action.UPDATE)],
    ),
    (
        "current first (first appearance), then absent stored (stored order)",
        [inc(rc="gpu-node-003/0"), inc(), inc(rc="gpu-node-003/0")],
        {PDU: stored_pdu(), GPU: stored()},
        True,
        (),
        (),
        [(GPU2, Action.POST), (GPU, Action.NOOP), (PDU, Action.RESOLVE)],
    ),
    (
        "duplicate keys decide once",
        [inc("warning", 0.5), inc("critical", 0.9)],
        {GPU: stored()},
        True,
        (),
        (),
        [(GPU, Action.UPDATE)],
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c[1:], id=c[0]) for c in CYCLE_CASES])
def test_decide_cycle_table(case: tuple) -> None:  # type: ignore[type-arg]
    current, states, data_ok, silences, unobserved, expected = case
    decisions = decide_cycle(
        current, states, data_ok=data_ok, silences=silences, unobserved=unobserved
    )
    assert [(d.dedup_key, d.action) for d in decisions] == expected, [d.reason for d in decisions]
    if not data_ok:
        assert Action.RESOLVE not in {d.action for d in decisions}


@pytest.mark.parametrize(
    ("incidents", "kept"),
    [
        pytest.param([inc("warning", 0.9), inc("critical", 0.2)], 1, id="more severe wins"),
        pytest.param([inc("critical", 0.2), inc("warning", 0.9)], 0, id="order does not matter"),
        pytest.param([inc("warning", 0.5), inc("warning", 0.7)], 1, id="then riskier wins"),
        pytest.param([inc("warning", 0.7), inc("warning", 0.7)], 0, id="a tie keeps the first"),
    ],
)
def test_decide_cycle_keeps_the_worst_of_duplicate_keys(
    incidents: list[Incident], kept: int
) -> None:
    (d,) = decide_cycle(incidents, {}, data_ok=True)
    assert d.action is Action.POST
    assert d.incident is incidents[kept]


def test_decide_cycle_passes_epsilon_and_validates_it() -> None:
    states = {GPU: stored()}
    assert [d.action for d in decide_cycle([inc(score=0.82)], states, data_ok=True)] == [
        Action.NOOP
    ]
    tight = decide_cycle([inc(score=0.82)], states, data_ok=True, score_epsilon=0.01)
    assert [d.action for d in tight] == [Action.UPDATE]
    with pytest.raises(ValueError, match="score_epsilon"):
        decide_cycle([inc()], {}, data_ok=True, score_epsilon=-1)


def test_decide_cycle_is_decide_per_key() -> None:
    """Each decision equals ``decide`` on the same inputs: the cycle adds no rule of its own."""
    current = [inc("critical", 0.9), inc(rc="gpu-node-003/0")]
    states = {GPU: stored(), PDU: stored_pdu()}
    decisions = decide_cycle(current, states, data_ok=True, silences=("gpu-node-003",))
    assert decisions == [
        decide(current[0], states[GPU], data_ok=True),
        decide(current[1], None, data_ok=True, silenced=True),
        decide(None, states[PDU], data_ok=True, dedup_key=PDU),
    ]


def test_an_incident_merged_into_a_broader_one_resolves_as_merged() -> None:
    """The tracker's ``merged`` turns the resolve's reason into "merged into <title>"; on bad
    data nothing resolves, merged or not; a never-posted one resolves silently either way."""
    merged = {"gpu:gpu-node-001/3": "pdu-a1: 8 GPUs at risk"}
    (d,) = decide_cycle(
        [], {"gpu:gpu-node-001/3": stored_at("gpu-node-001/3")}, data_ok=True, merged=merged
    )
    assert d.action is Action.RESOLVE and d.notify
    assert d.merged_into == "pdu-a1: 8 GPUs at risk"
    assert d.reason == "merged into pdu-a1: 8 GPUs at risk"
    (bad,) = decide_cycle(
        [], {"gpu:gpu-node-001/3": stored_at("gpu-node-001/3")}, data_ok=False, merged=merged
    )
    assert bad.action is Action.NOOP
    quiet = replace(stored_at("gpu-node-001/3"), notified_severity=None)
    (silent,) = decide_cycle([], {"gpu:gpu-node-001/3": quiet}, data_ok=True, merged=merged)
    assert silent.action is Action.RESOLVE and not silent.notify
    (plain,) = decide_cycle([], {"gpu:gpu-node-001/3": stored_at("gpu-node-001/3")}, data_ok=True)
    assert plain.merged_into is None and plain.reason == "absent from a cycle with good data"
