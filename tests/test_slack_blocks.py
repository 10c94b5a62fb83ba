"""Block Kit builders: Slack's limits hold for any input, labels are allowlisted, links appear."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from slack_sdk.models.blocks import Block

from analysis.types import Explanation, Factor, GpuScore, Incident, RootCause
from bot.blocks import answers
from bot.blocks.alert import alert_blocks, worse_reply_blocks
from bot.blocks.common import (
    ACTION_ACK,
    ACTION_FALSE_ALARM,
    ACTION_SILENCE_4H,
    ACTION_SILENCE_MODAL,
    BlockOptions,
    clip,
    redact_labels,
)
from bot.blocks.home import home_view
from bot.blocks.modal import silence_modal
from bot.blocks.models import AlertState, IncidentView, StatusView
from bot.blocks.render import render_text
from tests.fakeslack.server import FakeSlack, SlackError
from tests.fixtures.slack import gpu_incident, pdu_incident

render_md = partial(render_text, markup=True)  # keep mrkdwn markers and link URLs

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def huge_incident(n_gpus: int = 600, text: int = 20_000) -> Incident:
    """An incident far beyond every Slack limit."""
    return Incident(
        id="huge",
        at=AT,
        severity="critical",
        score=0.99,
        root_cause=RootCause("pdu-" + "x" * 300, "pdu"),
        gpus=tuple(GpuScore(f"gpu-node-{i // 8:03d}", str(i % 8), 0.9) for i in range(n_gpus)),
        explanation=Explanation(
            summary="s" * text,
            factors=tuple(Factor(f"f{i}" * 400, "e" * 400, 0.01, "d" * 2000) for i in range(40)),
            hints=tuple("h" * 5000 for _ in range(30)),
        ),
    )


def assert_slack_valid(blocks: list[dict], limit: int = 50) -> None:
    """Slack's own checks (the fake's validator) accept the blocks."""
    FakeSlack.check_blocks(blocks, limit)
    for b in blocks:
        Block.parse(b).to_dict()  # type: ignore[union-attr]


def test_clip_counts_what_it_cut() -> None:
    assert clip("abc", 10) == "abc"
    cut = clip("x" * 5000, 3000)
    assert len(cut) <= 3000
    assert cut.endswith(f"(+{5000 - cut.index('…')} chars)")


def test_alert_blocks_respect_every_limit_and_say_what_was_cut() -> None:
    blocks = alert_blocks(huge_incident(), AlertState(acked_by="U1", acked_at=AT))
    assert len(blocks) <= 50
    assert_slack_valid(blocks)
    header = blocks[0]["text"]["text"]
    assert len(header) <= 150 and "chars)" in header
    rendered = render_md(blocks)
    assert "and 592 more" in rendered  # 600 GPUs, 8 shown
    assert "… and 37 more factors" in rendered
    assert blocks[-1]["type"] == "actions"


def test_more_than_fifty_blocks_are_cut_with_a_count_keeping_buttons() -> None:
    from bot.blocks.common import fit, section

    blocks = [section(f"row {i}") for i in range(80)]
    blocks.append(alert_blocks(gpu_incident(AT))[-1])  # the actions block
    out = fit(blocks)
    assert len(out) == 50
    assert out[-1]["type"] == "actions"
    assert "32 more blocks not shown" in out[-2]["elements"][0]["text"]
    with pytest.raises(SlackError):
        FakeSlack.check_blocks([b if isinstance(b, dict) else b.to_dict() for b in blocks])


def test_alert_content_buttons_and_links() -> None:
    opts = BlockOptions(
        grafana_url="https://grafana.example.com", prometheus_ui_url="https://prom.example.com"
    )
    blocks = alert_blocks(gpu_incident(AT), None, opts, record_id=42)
    text = render_md(blocks)
    assert blocks[0]["text"]["text"] == "Check GPU 3 on gpu-node-001"
    assert "warning" in text and "0.93" in text
    assert "runs 14 °C hotter" in text and "FAN2 speed" in text and "71%" in text
    actions = blocks[-1]["elements"]
    assert [a["action_id"] for a in actions] == [
        ACTION_ACK,
        ACTION_SILENCE_4H,
        ACTION_SILENCE_MODAL,
        ACTION_FALSE_ALARM,
    ]
    assert {a["value"] for a in actions} == {"42"}
    assert "[ Acknowledge ] [ Silence 4h ] [ Silence… ] [ False alarm ]" in text
    links = str(blocks)
    assert "https://grafana.example.com/explore?left=" in links
    assert "https://prom.example.com/graph?g0.expr=DCGM_FI_DEV_GPU_TEMP" in links
    assert "gpu-node-001" in links
    no_links = str(alert_blocks(gpu_incident(AT)))
    assert "grafana" not in no_links and "/graph?" not in no_links


def test_an_alert_on_risk_held_below_the_threshold_says_so() -> None:
    held = replace(gpu_incident(AT), score=0.62, signals=("risk held >= 0.50 for 60 min",))
    text = render_md(alert_blocks(held))
    assert "0.62 (risk held >= 0.50 for 60 min)" in text
    assert "risk held" not in render_md(alert_blocks(gpu_incident(AT)))


def test_labels_outside_the_allowlist_never_reach_slack() -> None:
    blocks = alert_blocks(gpu_incident(AT))
    assert "train-llm-42" not in str(blocks)
    assert 'pod="[hidden]"' in str(blocks)
    opts = BlockOptions(label_allowlist=frozenset({"pod"}))
    assert "train-llm-42" in str(alert_blocks(gpu_incident(AT), None, opts))
    assert (
        redact_labels('Hostname="n1", namespace="team-x"', {"Hostname"})
        == 'Hostname="n1", namespace="[hidden]"'
    )


def test_acknowledged_silenced_false_alarm_and_resolved_states_show() -> None:
    state = AlertState(
        status="acknowledged",
        acked_by="U0ADMIN",
        acked_at=AT,
        silenced_until=AT + timedelta(hours=4),
        silenced_by="U0ADMIN",
        silence_reason="maintenance",
        false_alarm_by="U0OTHER",
        false_alarm_at=AT,
    )
    text = render_md(alert_blocks(pdu_incident(AT), state))
    assert "Acknowledged by @U0ADMIN at 2026-11-22 10:00 UTC" in text
    assert "Silenced until 2026-11-22 14:00 UTC by @U0ADMIN: maintenance" in text
    assert "Marked a false alarm by @U0OTHER" in text
    resolved = alert_blocks(pdu_incident(AT), AlertState(status="resolved", resolved_at=AT))
    assert resolved[0]["text"]["text"].startswith("Resolved: pdu-a1: 8 GPUs at risk")
    assert all(b["type"] != "actions" for b in resolved)


def test_worse_reply_says_what_changed() -> None:
    before = pdu_incident(AT, n_gpus=4, severity="warning")
    after = pdu_incident(AT, n_gpus=8)
    text = render_md(worse_reply_blocks(before, after))
    assert "severity warning → *critical*" in text
    assert "GPUs at risk 4 → *8*" in text
    assert "gpu-node-002/0" in text  # newly at risk


def test_answers_are_valid_and_bounded() -> None:
    views = [IncidentView(pdu_incident(AT), channel="C1", ts="1.2")] * 30
    top = answers.top_blocks(views, [GpuScore("n", str(i), 0.5) for i in range(40)])
    assert_slack_valid(top)
    assert "and 20 more" in render_md(top)
    assert "https://slack.com/archives/C1/p12" in str(top)
    status = StatusView(AT, True, 16, "prom", True, "", "v1", 7200, 3, AT + timedelta(minutes=2))
    rendered = render_md(answers.status_blocks(status))
    assert "2026-11-22 10:00 UTC (2 min ago)" in rendered
    assert "16 GPUs scored" in rendered and "2.0 h" in rendered
    for blocks in (
        answers.help_blocks(),
        answers.usage_blocks("x" * 9000),
        answers.unknown_blocks("gpu-nod-001", ["gpu-node-001"]),
        answers.refusal_blocks("silence alerts"),
        answers.whatif_blocks("pdu-a1", "pdu", ["n"] * 100, ["g"] * 800, ["g"] * 50),
        answers.graph_blocks("n1", "node", {"pdu": ["p"] * 90}, {"gpu": ["g"] * 900}, {}),
    ):
        assert_slack_valid(blocks)


def test_home_and_modal_are_valid_views() -> None:
    status = StatusView(None, None, None, "prom", None, "", None, None, 0, AT)
    by_rack = {f"rack-{i}": [GpuScore(f"n{i}", str(g), 0.95) for g in range(30)] for i in range(80)}
    home = home_view(by_rack, [IncidentView(pdu_incident(AT))] * 50, status)
    assert home["type"] == "home"
    assert_slack_valid(home["blocks"], limit=100)
    assert "… and 50 more racks with 1500 at-risk GPUs" in render_md(home["blocks"])
    assert "Open incidents (50)" in render_md(home["blocks"])
    modal = silence_modal("7", "pdu-a1", "C1", "1.2")
    assert modal["type"] == "modal" and len(modal["title"]["text"]) <= 24
    assert_slack_valid(modal["blocks"], limit=100)


@pytest.mark.parametrize(
    ("basis", "shown"),
    [("attribution", "— 71%"), ("detector", "— flagged by the detector"),
     ("deviation", "— ranked by deviation"), ("rule", "— rule fired")],
)  # fmt: skip
def test_a_share_is_shown_only_where_it_is_a_causal_attribution(basis: str, shown: str) -> None:
    """A z-score ranking's or a rule's share is no share of the anomaly: the line says which."""
    incident = gpu_incident(AT)
    exp = incident.explanation
    assert exp is not None
    top = replace(exp.factors[0], basis=basis)
    incident = replace(incident, explanation=replace(exp, factors=(top, *exp.factors[1:])))
    text = render_text(alert_blocks(incident, None, BlockOptions()))
    assert f"• FAN2 speed on gpu-node-001 {shown}" in text
    assert ("71%" in text) == (basis == "attribution")


def test_render_text_reads_like_slack() -> None:
    blocks = alert_blocks(gpu_incident(AT), None, BlockOptions(grafana_url="https://g.example"))
    text = render_text(blocks)
    lines = text.splitlines()
    assert lines[0] == "Check GPU 3 on gpu-node-001"
    assert lines[1] == "=" * len(lines[0])
    assert lines[-1] == "[ Acknowledge ] [ Silence 4h ] [ Silence… ] [ False alarm ]"
    assert "• FAN2 speed on gpu-node-001 — 71%" in text  # no mrkdwn markers
    assert "*" not in text and "`" not in text
    assert "| Grafana" in text and "https://g.example" not in text
    assert "Severity: (!) warning" in text
    md = render_text(blocks, markup=True)
    assert "*FAN2 speed*" in md and "Explore (https://g.example/explore" in md
    assert "Grafana (https://g.example/d/gpu-risk-fleet/gpu-risk?" in md
    bold = render_text(blocks, color=True)
    assert "\033[1mCheck GPU 3 on gpu-node-001\033[0m" in bold
    assert "\033[1mFAN2 speed\033[0m" in bold


# ---------------------------------------------------------------- dates and mentions

DATE_TOKEN = "<!date^1795341600^{date_short_pretty} {time}|2026-11-22 10:00 UTC>"


def _raw(blocks: list[dict]) -> str:
    """Every mrkdwn text of the blocks as sent to Slack."""
    import json

    return json.dumps(blocks, ensure_ascii=False).replace('\\"', '"')


def test_times_go_to_slack_as_date_tokens_with_a_utc_fallback() -> None:
    from bot.blocks.alert import resolved_reply_blocks
    from bot.blocks.common import fmt_time, plain_text, utc_text

    assert fmt_time(AT) == DATE_TOKEN and AT.timestamp() == 1795341600
    assert utc_text(AT) == "2026-11-22 10:00 UTC" and fmt_time(None) == "never"
    state = AlertState(
        status="acknowledged",
        acked_by="U0ADMIN",
        acked_at=AT,
        silenced_until=AT + timedelta(hours=4),
        silenced_by="U0ADMIN",
    )
    alert = alert_blocks(gpu_incident(AT), state)
    raw = _raw(alert)
    assert "detected " + DATE_TOKEN in raw  # the alert's detection time
    assert "Acknowledged by <@U0ADMIN> at " + DATE_TOKEN in raw
    resolved = AlertState(status="resolved", resolved_at=AT)
    assert "Resolved at " + DATE_TOKEN in _raw(alert_blocks(gpu_incident(AT), resolved))
    assert "Resolved* at " + DATE_TOKEN in _raw(resolved_reply_blocks(gpu_incident(AT)))
    status = StatusView(
        last_scan_at=AT,
        last_scan_ok=True,
        gpus_scored=16,
        data_source="Prometheus",
        data_healthy=True,
        data_detail="",
        model_version="v1",
        model_age_seconds=60.0,
        open_incidents=0,
        now=AT,
    )
    assert DATE_TOKEN in _raw(answers.status_blocks(status))
    # the terminal and the notification fallback show the UTC text, never the token
    for text in (render_text(alert), render_text(alert, markup=True)):
        assert "<!date" not in text and "detected 2026-11-22 10:00 UTC" in text
    assert plain_text(f"detected {DATE_TOKEN}") == "detected 2026-11-22 10:00 UTC"


def test_the_digest_mentions_people_and_dates_its_lines(tmp_path: Path) -> None:
    from bot.digest import digest_text
    from storage.repository import Repository

    repo = Repository.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        inc = gpu_incident(AT)
        (d,) = repo.apply_cycle(AT, [inc], True)
        assert d.incident_id is not None
        repo.acknowledge(d.incident_id, "U0ADMIN", AT)
        repo.record_feedback(d.incident_id, "false_alarm", "U0ONCALL", AT)
        text = digest_text(repo, AT + timedelta(hours=1))
    finally:
        repo.close()
    assert "acknowledged by <@U0ADMIN>" in text
    assert "(marked by <@U0ONCALL>)" in text
    assert "since " + DATE_TOKEN in text
    assert "<!date^1795345200^" in text.splitlines()[0]  # the digest's own time


def test_mentions_are_validated_everywhere() -> None:
    from bot.blocks.common import mention

    assert mention("U0ADMIN") == "<@U0ADMIN>" and mention("W123") == "<@W123>"
    assert mention("<!channel>") == "&lt;!channel&gt;" and mention("bob") == "bob"
    from analysis.feedback import Allowance

    status = StatusView(None, None, None, "Prometheus", None, "", None, None, 0, AT)
    taught = [
        Allowance("gpu-node-001/3", "temp", 0.0, 2.0, 1.5, 7, who, AT, AT + timedelta(days=7))
        for who in ("U0ADMIN", "<!here>")
    ]
    raw = _raw(answers.status_blocks(status, taught))
    assert "incident 7 by <@U0ADMIN>" in raw  # a false-alarm verdict's author, mentioned
    assert "<!here>" not in raw and "by &lt;!here&gt;" in raw
