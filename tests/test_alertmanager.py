"""Alertmanager as a destination: incidents pushed to a real Alertmanager reach its webhook with
the documented labels, updates change the annotations, a resolve arrives resolved, one incident is
one alert however many GPUs it has, an Alertmanager silence mutes the webhook while the incident
stays open in gpu-risk, and open incidents are re-sent before they expire."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from analysis.types import Explanation, GpuScore, Incident, Rack, RootCause, Topology
from bot.delivery import deliver
from bot.sinks import AlertmanagerSink, FanOut, Notification, resend_open_alerts
from bot.sinks.alertmanager import ALERTNAME, TTL_INTERVALS, AlertmanagerError
from bot.sinks.console import ConsoleSink
from storage.repository import Repository
from tests.fixtures import slack as fx
from tests.fixtures.prometheus import free_port

migrated_db = fx.migrated_db
repo = fx.repo

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
GRAFANA = "https://grafana.example.com"
RUNBOOK = "https://runbooks.example.com/gpu-risk"
TOPOLOGY = Topology(
    racks=(
        Rack("rack-a1", ("gpu-node-001", "gpu-node-002"), power=("pdu-a1",)),
        Rack("rack-a2", ("gpu-node-003",), power=("pdu-a1",)),
    )
)


def require_alertmanager() -> str:
    """The Alertmanager binary; else skip (fail under CI=true) naming the package."""
    found = ALERTMANAGER if os.access(ALERTMANAGER, os.X_OK) else shutil.which("alertmanager")
    if found:
        return found
    message = f"{ALERTMANAGER} is missing: apt-get install -y prometheus-alertmanager"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: tests that need it must run)")
    pytest.skip(message)
    raise AssertionError("unreachable")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail saying ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------------- a capturing HTTP server


@dataclass
class Capture:
    """A local HTTP server recording every POST body (the webhook, or a stand-in Alertmanager)."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self) -> list[Any]:
        """A copy of the bodies so far."""
        with self.lock:
            return list(self.bodies)


@pytest.fixture(scope="module")
def capture_server() -> Iterator[Capture]:
    """Start a threading HTTP server on a free port; stop it after the module."""
    port = free_port()
    cap = Capture(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            """Record the JSON body and answer with the configured status."""
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with cap.lock:
                cap.bodies.append(json.loads(raw or b"null"))
                cap.headers.append(dict(self.headers))
            self.send_response(cap.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield cap
    server.shutdown()
    server.server_close()


@pytest.fixture
def capture(capture_server: Capture) -> Capture:
    """The capturing server, emptied and answering 200."""
    with capture_server.lock:
        capture_server.bodies.clear()
        capture_server.headers.clear()
    capture_server.status = 200
    return capture_server


# ---------------------------------------------------------------------- a real Alertmanager


@dataclass
class Alertmanager:
    """A running Alertmanager and the webhook it notifies."""

    url: str
    webhook: Capture

    def notifications(self, cluster: str) -> list[dict[str, Any]]:
        """Webhook payloads of one test's group (its ``cluster`` label)."""
        return [b for b in self.webhook.seen() if b["groupLabels"].get("cluster") == cluster]

    def alerts(self, cluster: str) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds for ``cluster`` (``GET /api/v2/alerts``)."""
        r = requests.get(
            f"{self.url}/api/v2/alerts", params={"filter": f'cluster="{cluster}"'}, timeout=5
        )
        r.raise_for_status()
        return list(r.json())


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    """Alertmanager on a free port (no clustering) notifying a local webhook every second."""
    binary = require_alertmanager()
    work = tmp_path_factory.mktemp("alertmanager")
    hook_port, port = free_port(), free_port()
    webhook = Capture(f"http://127.0.0.1:{hook_port}")

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            """Record one notification."""
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with webhook.lock:
                webhook.bodies.append(json.loads(raw))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            """Quiet."""

    hook = ThreadingHTTPServer(("127.0.0.1", hook_port), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    config = work / "alertmanager.yml"
    config.write_text(
        f"""route:
  receiver: hook
  group_by: [alertname, cluster]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: {webhook.url}/hook
        send_resolved: true
""",
        encoding="utf-8",
    )
    log = work / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        """True once /-/ready answers 200 (fail at once if the process died)."""
        if proc.poll() is not None:
            raise AssertionError(f"alertmanager exited:\n{log.read_text(errors='replace')}")
        try:
            return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for("Alertmanager's /-/ready", ready, timeout=30)
        yield Alertmanager(url, webhook)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        hook.shutdown()
        hook.server_close()


# ---------------------------------------------------------------------- incidents


def gpu_incident(at: datetime, score: float = 0.85, summary: str = "runs hot") -> Incident:
    """GPU 3 on gpu-node-001 at risk, explained."""
    return Incident(
        "inc-gpu", at, "warning", score, RootCause("gpu-node-001/3", "gpu"),
        (GpuScore("gpu-node-001", "3", score),),
        explanation=Explanation(f"GPU 3 on gpu-node-001 {summary}"),
    )  # fmt: skip


def node_incident(at: datetime) -> Incident:
    """Two GPUs of gpu-node-002 at risk under their node."""
    return Incident(
        "inc-node", at, "critical", 0.97, RootCause("gpu-node-002", "node"),
        (GpuScore("gpu-node-002", "0", 0.97), GpuScore("gpu-node-002", "1", 0.95)),
        explanation=Explanation("gpu-node-002: FAN2 stopped"),
    )  # fmt: skip


def pdu_incident(at: datetime) -> Incident:
    """GPUs in two racks at risk under their PDU."""
    return Incident(
        "inc-pdu", at, "warning", 0.93, RootCause("pdu-a1", "pdu"),
        (GpuScore("gpu-node-001", "0", 0.93), GpuScore("gpu-node-003", "5", 0.91)),
    )  # fmt: skip


def sink_for(
    url: str, cluster: str, store: Repository | None = None, **kw: Any
) -> AlertmanagerSink:
    """A sink as the wiring builds it."""
    return AlertmanagerSink(
        url,
        cluster=cluster,
        runbook_url=RUNBOOK,
        grafana_url=GRAFANA,
        topology=TOPOLOGY,
        repository=store,
        timeout=5,
        **kw,
    )


def alerts_in(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every alert of some webhook payloads, in order."""
    return [a for p in payloads for a in p["alerts"]]


def by_root(alerts: list[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    """The alerts of one root cause."""
    return [a for a in alerts if a["labels"]["root_cause"] == root]


# ---------------------------------------------------------------------- with the real Alertmanager


def test_an_incident_reaches_the_webhook_then_updates_and_resolves(
    alertmanager: Alertmanager, repo: Repository
) -> None:
    cluster = "c-lifecycle"
    sink = sink_for(alertmanager.url, cluster, repo)
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    repo.apply_cycle(t0, [gpu_incident(t0)], True)
    assert deliver(repo, sink, at=t0) == 1  # Alertmanager alone: post returns None, row sent
    (sent,) = repo.outbox(status="sent")
    assert sent.kind == "post" and sent.message_ref is None and not repo.outbox(status="pending")

    def firing_with(text: str) -> list[dict[str, Any]]:
        """Firing alerts of the webhook whose description holds ``text``."""
        alerts = alerts_in(alertmanager.notifications(cluster))
        return [
            a for a in alerts if a["status"] == "firing" and text in a["annotations"]["description"]
        ]

    (first, *_) = wait_for("the firing alert at the webhook", lambda: firing_with("runs hot"))
    assert first["labels"] == {
        "alertname": ALERTNAME,
        "severity": "warning",
        "root_cause": "gpu-node-001/3",
        "root_kind": "gpu",
        "Hostname": "gpu-node-001",
        "node": "gpu-node-001",
        "gpu": "3",
        "rack": "rack-a1",
        "cluster": cluster,
    }
    notes = first["annotations"]
    assert notes["summary"] == "Check GPU 3 on gpu-node-001"
    assert notes["description"] == "GPU 3 on gpu-node-001 runs hot"
    assert notes["runbook_url"] == RUNBOOK and notes["risk"] == "0.85"
    assert notes["grafana_url"].startswith(f"{GRAFANA}/d/gpu-risk-fleet/gpu-risk?orgId=1&from=")
    assert "var-Hostname=gpu-node-001&var-rack=rack-a1" in notes["grafana_url"]
    assert first["generatorURL"] == notes["grafana_url"]

    t1 = t0 + timedelta(minutes=1)  # worse, same severity: an update with new annotations
    repo.apply_cycle(t1, [gpu_incident(t1, 0.99, "runs hotter still")], True)
    assert deliver(repo, sink, at=t1) == 1
    (updated, *_) = wait_for("the updated annotations", lambda: firing_with("hotter still"))
    assert updated["annotations"]["risk"] == "0.99"
    assert updated["labels"] == first["labels"]  # the same alert, not a new one

    t2 = t0 + timedelta(minutes=2)
    repo.apply_cycle(t2, [], True)  # gone: resolved
    assert deliver(repo, sink, at=t2) == 1

    def resolved() -> list[dict[str, Any]]:
        """Resolved alerts of the webhook."""
        alerts = alerts_in(alertmanager.notifications(cluster))
        return [a for a in alerts if a["status"] == "resolved"]

    (done, *_) = wait_for("the resolved alert at the webhook", resolved)
    assert done["labels"]["root_cause"] == "gpu-node-001/3"
    assert not repo.open_incidents()


def test_one_alert_per_incident_and_two_incidents_in_one_group(
    alertmanager: Alertmanager, repo: Repository
) -> None:
    cluster = "c-grouping"
    sink = sink_for(alertmanager.url, cluster, repo)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    repo.apply_cycle(t0, [node_incident(t0), pdu_incident(t0)], True)
    assert deliver(repo, sink, at=t0) == 2

    def both() -> dict[str, Any] | None:
        """A notification of the group holding both incidents."""
        for payload in alertmanager.notifications(cluster):
            roots = {a["labels"]["root_cause"] for a in payload["alerts"]}
            if roots == {"gpu-node-002", "pdu-a1"}:
                return payload
        return None

    payload = wait_for("one notification with both incidents", both)
    assert len(payload["alerts"]) == 2  # two GPUs of the node incident are one alert
    (node,) = by_root(payload["alerts"], "gpu-node-002")
    assert node["labels"]["Hostname"] == node["labels"]["node"] == "gpu-node-002"
    assert "gpu" not in node["labels"] and node["labels"]["rack"] == "rack-a1"
    assert node["labels"]["severity"] == "critical"
    (pdu,) = by_root(payload["alerts"], "pdu-a1")
    assert pdu["labels"]["root_kind"] == "pdu"
    assert not {"Hostname", "node", "gpu", "rack"} & set(pdu["labels"])  # two racks: none named
    assert pdu["annotations"]["gpus"] == "gpu-node-001/0 0.93, gpu-node-003/5 0.91"
    assert len(alertmanager.alerts(cluster)) == 2


def test_an_alertmanager_silence_mutes_the_webhook_but_the_incident_stays_open(
    alertmanager: Alertmanager, repo: Repository
) -> None:
    cluster = "c-silence"
    sink = sink_for(alertmanager.url, cluster, repo)
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    repo.apply_cycle(t0, [node_incident(t0), pdu_incident(t0)], True)
    assert deliver(repo, sink, at=t0) == 2
    wait_for(
        "both incidents at the webhook",
        lambda: (
            len(by_root(alerts_in(alertmanager.notifications(cluster)), "pdu-a1")) > 0
            and len(by_root(alerts_in(alertmanager.notifications(cluster)), "gpu-node-002")) > 0
        ),
    )
    now = datetime.now(UTC)
    r = requests.post(
        f"{alertmanager.url}/api/v2/silences",
        json={
            "matchers": [
                {"name": "root_cause", "value": "pdu-a1", "isRegex": False, "isEqual": True},
                {"name": "cluster", "value": cluster, "isRegex": False, "isEqual": True},
            ],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "test",
            "comment": "PDU maintenance",
        },
        timeout=5,
    )
    r.raise_for_status()

    def suppressed() -> bool:
        """True once Alertmanager marks the PDU alert suppressed."""
        states = {
            a["labels"]["root_cause"]: a["status"]["state"] for a in alertmanager.alerts(cluster)
        }
        return states == {"pdu-a1": "suppressed", "gpu-node-002": "active"}

    wait_for("the PDU alert suppressed", suppressed)
    time.sleep(0.2)  # a notification already in flight may still carry it
    mark = len(alertmanager.notifications(cluster))
    assert sink.resend_open(now, force=True) == 2  # the PDU incident is pushed again, still open
    later = wait_for(
        "two more notifications of the group (repeat_interval 1 s)",
        lambda: (
            alertmanager.notifications(cluster)[mark:][:3]
            if len(alertmanager.notifications(cluster)) >= mark + 3
            else None
        ),
    )
    roots = [{a["labels"]["root_cause"] for a in p["alerts"]} for p in later[1:]]
    assert all(r == {"gpu-node-002"} for r in roots), roots  # the PDU alert is muted
    assert {r.dedup_key for r in repo.open_incidents()} == {"node:gpu-node-002", "pdu:pdu-a1"}


# ---------------------------------------------------------------------- what is pushed


def test_every_push_expires_and_open_incidents_are_resent_once_per_interval(
    capture: Capture, repo: Repository
) -> None:
    clock = [datetime(2026, 11, 22, 10, tzinfo=UTC)]
    sink = sink_for(
        capture.url, "", repo, resend_interval=timedelta(seconds=60), clock=lambda: clock[0]
    )
    t0 = clock[0] - timedelta(minutes=3)
    repo.apply_cycle(t0, [gpu_incident(t0), node_incident(t0)], True)
    assert deliver(repo, sink, at=t0) == 2
    (pushed,) = capture.seen()[0]
    assert pushed["startsAt"] == "2026-11-22T09:57:00.000Z"
    assert pushed["endsAt"] == "2026-11-22T10:04:00.000Z"  # now + 4 intervals
    assert TTL_INTERVALS == 4 and "cluster" not in pushed["labels"]

    repo.silence("gpu-node-001", clock[0] + timedelta(hours=1), "U1", "reboot", at=clock[0])
    assert resend_open_alerts(FanOut(ConsoleSink(stream=io.StringIO()), sink), clock[0]) == 1
    (resent,) = capture.seen()[-1]
    assert resent["labels"]["root_cause"] == "gpu-node-002"  # silenced in gpu-risk: not re-sent
    assert resent["startsAt"] == "2026-11-22T09:57:00.000Z"  # the first sighting, from the store
    clock[0] += timedelta(seconds=30)
    assert sink.resend_open(clock[0]) == 0  # not due yet
    clock[0] += timedelta(seconds=31)
    assert sink.resend_open(clock[0]) == 1
    assert capture.seen()[-1][0]["endsAt"] == "2026-11-22T10:05:01.000Z"


def test_a_severity_change_ends_the_previous_severitys_alert(capture: Capture) -> None:
    now = datetime(2026, 11, 22, 10, tzinfo=UTC)
    sink = sink_for(capture.url, "prod", clock=lambda: now)
    worse = replace(gpu_incident(now - timedelta(minutes=5)), severity="critical")
    sink.update(note(worse, previous_severity="warning"))
    new, old = capture.seen()[-1]
    assert (new["labels"]["severity"], old["labels"]["severity"]) == ("critical", "warning")
    assert old["endsAt"] == "2026-11-22T10:00:00.000Z" and new["endsAt"] > old["endsAt"]
    assert new["labels"]["cluster"] == "prod"
    sink.resolve(note(worse, at=now + timedelta(hours=1)))  # a clock ahead: ended now
    (ended,) = capture.seen()[-1]
    assert ended["endsAt"] == "2026-11-22T10:00:00.000Z"


def test_labels_are_bounded_by_the_root_cause(capture: Capture) -> None:
    sink = sink_for(capture.url, "")
    at = datetime(2026, 11, 22, 10, tzinfo=UTC)
    rack = Incident(
        "r", at, "warning", 0.9, RootCause("rack-a2", "rack"), (GpuScore("gpu-node-003", "0", 0.9),)
    )
    assert sink.labels(rack)["rack"] == "rack-a2" and "Hostname" not in sink.labels(rack)
    one_rack_pdu = replace(pdu_incident(at), gpus=(GpuScore("gpu-node-002", "1", 0.9),))
    assert sink.labels(one_rack_pdu)["rack"] == "rack-a1"
    unknown = replace(gpu_incident(at), root_cause=RootCause("gpu-node-999/0", "gpu"))
    assert "rack" not in sink.labels(unknown) and sink.labels(unknown)["gpu"] == "0"
    big = replace(
        pdu_incident(at),
        gpus=tuple(GpuScore(f"n{i}", str(g), 0.9) for i in range(50) for g in range(8)),
    )
    assert set(sink.labels(big)) == {"alertname", "severity", "root_cause", "root_kind"}
    assert sink.annotations(big)["gpus"].endswith(" and 392 more")
    assert "description" in sink.annotations(big)  # no explanation yet: a sentence all the same


def test_auth_is_sent_and_a_refusal_raises_for_the_outbox_to_retry(capture: Capture) -> None:
    at = datetime(2026, 11, 22, 10, tzinfo=UTC)
    sink_for(capture.url, "", bearer_token="s3cret").post(note(gpu_incident(at)))
    assert capture.headers[-1]["Authorization"] == "Bearer s3cret"
    sink_for(capture.url, "", basic_auth=("am", "pw")).post(note(gpu_incident(at)))
    assert capture.headers[-1]["Authorization"].startswith("Basic ")
    capture.status = 400
    with pytest.raises(AlertmanagerError, match="Alertmanager answered 400") as err:
        sink_for(capture.url, "").post(note(gpu_incident(at)))
    assert err.value.response is not None and err.value.response.status_code == 400
    with pytest.raises(requests.ConnectionError):
        sink_for(f"http://127.0.0.1:{free_port()}", "").post(note(gpu_incident(at)))


def test_wiring_mirrors_slack_or_makes_alertmanager_the_primary(tmp_path: Path) -> None:
    from bot.config import Settings
    from bot.wiring import _wire_alertmanager

    settings = Settings(alertmanager_url="http://am.example:9093", cluster="prod")
    console = ConsoleSink(stream=io.StringIO())
    alone = SimpleNamespace(settings=settings, repository=None, sink=console, slack=None)
    _wire_alertmanager(alone, TOPOLOGY)  # type: ignore[arg-type]
    assert isinstance(alone.sink, FanOut)
    assert isinstance(alone.sink.primary, AlertmanagerSink) and alone.sink.mirrors == (console,)
    assert alone.sink.primary.cluster == "prod"
    slack_sink = ConsoleSink(stream=io.StringIO())
    both = SimpleNamespace(settings=settings, repository=None, sink=slack_sink, slack=object())
    _wire_alertmanager(both, TOPOLOGY)  # type: ignore[arg-type]
    assert both.sink.primary is slack_sink and isinstance(both.sink.mirrors[0], AlertmanagerSink)


# ---------------------------------------------------------------------- helpers


def note(
    inc: Incident, *, previous_severity: str | None = None, at: datetime | None = None
) -> Notification:
    """A decoded notification of ``inc`` (no stored record)."""
    previous = replace(inc, severity=previous_severity or inc.severity)  # type: ignore[arg-type]
    return Notification(
        outbox_id=1,
        idempotency_key="incident:1:1:post",
        attempts=1,
        created_at=inc.at,
        record_id=None,
        incident=inc,
        previous=previous,
        dedup_key=inc.dedup_key,
        at=at,
    )
