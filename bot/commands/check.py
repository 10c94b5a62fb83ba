"""``gpu-risk check``: validate the configuration, then connect and say exactly what is wrong.

First the settings (exit 2 on a problem: nothing is contacted). Then, unless ``--offline``, the
wiring itself, one line per finding (``✓`` works, ``✗`` broken with what to do, ``!`` worth
knowing but not blocking): Prometheus reachable and authorized; the expected series present;
the topology (labels and file) readable, its components' PromQL valid and returning data, its
node names matching DCGM's ``Hostname``; Slack's token, scopes and channels; Alertmanager. Exit
0 only when nothing is ``✗`` (1 otherwise). Credentials are masked everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.commands.common import ConfigOption, guarded, parse_at, settings_from
from bot.config import ConfigError, Settings, problems
from storage.redact import redact_text, redact_url
from storage.topology import load_topology

if TYPE_CHECKING:
    from analysis.types import Topology
    from storage.metrics import PrometheusSource

#: dcgm-exporter fields off by default: deploy/dcgm-exporter/counters.csv turns them on.
OPT_IN_DCGM: tuple[str, ...] = (
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_THERMAL_VIOLATION",
    "DCGM_FI_DEV_POWER_VIOLATION",
)
COUNTERS_HINT = "run dcgm-exporter with -f deploy/dcgm-exporter/counters.csv"
#: At most this many component queries (one per component metric) per check.
MAX_COMPONENT_QUERIES = 200
#: The Slack app's manifest: the bot scopes the token should have.
MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def register(app: typer.Typer) -> None:
    """Add the ``check`` command."""
    app.command("check")(guarded(check))


@dataclass(frozen=True)
class Finding:
    """One line of the check: ``ok`` True (✓), False (✗) or None (! advisory)."""

    ok: bool | None
    text: str

    def line(self) -> str:
        """The printed line."""
        mark = {True: "✓", False: "✗", None: "!"}[self.ok]
        return f"{mark} {redact_text(self.text)}"


def check(
    config: Path | None = ConfigOption,
    slack: bool = typer.Option(False, "--slack", help="Also require the Slack settings"),
    prometheus: bool = typer.Option(
        True, "--prometheus/--no-prometheus", help="Require Prometheus"
    ),
    at: Annotated[
        str | None,
        typer.Option("--at", help="Look for series at this time (RFC 3339; default: now)"),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Only validate the settings; contact nothing")
    ] = False,
) -> None:
    """Validate the configuration (environment, --config file, topology) and list problems."""
    settings = settings_from(config)
    when = parse_at(at)
    needs = tuple(n for n, on in (("prometheus", prometheus), ("slack", slack)) if on)
    found = problems(settings, needs=needs)
    if settings.topology is not None and settings.topology.is_file():
        try:
            topo = load_topology(settings.topology, partial=bool(settings.topology_labels))
        except ValueError as exc:
            found.append(str(exc))
        else:
            Console().print(
                f"topology: {len(topo.racks)} racks, {len(topo.nodes)} nodes, "
                f"{len(topo.components)} components with metrics"
            )
    _print_summary(settings)
    if found:
        for line in found:
            Console(stderr=True).print(f"[red]✗[/] {escape(redact_text(line))}", highlight=False)
        raise typer.Exit(code=2)
    Console().print("[green]✓ configuration is valid[/]")
    if offline:
        return
    findings: list[Finding] = []
    if prometheus and settings.prometheus_url:
        findings += prometheus_findings(settings, when)
    if slack or settings.slack_bot_token is not None:
        findings += slack_findings(settings)
    if getattr(settings, "alertmanager_url", None):
        findings += alertmanager_findings(settings)
    console = Console(highlight=False, soft_wrap=True)
    for f in findings:
        console.print(escape(f.line()))
    if any(f.ok is False for f in findings):
        raise typer.Exit(code=1)


# ---------------------------------------------------------------------------------- Prometheus


def prometheus_findings(settings: Settings, at: datetime | None) -> list[Finding]:
    """Reachability, series, topology PromQL and node names, one finding each."""
    from bot.wiring import build_source
    from storage.metrics import PrometheusSource
    from storage.source import MetricsSourceError

    try:
        source = build_source(settings, None)
    except (ConfigError, MetricsSourceError) as exc:
        return [Finding(False, str(exc))]
    if not isinstance(source, PrometheusSource):  # pragma: no cover - build_source's type
        return []
    when = f" at {at.isoformat()}" if at is not None else ""
    try:
        up = source.query(f"count({source.select('up')})", at, what="up")
    except MetricsSourceError as exc:
        return [Finding(False, str(exc))]
    targets = int(up[0][1]) if up else 0
    out = [Finding(True, f"Prometheus at {source.url} answers ({targets} scrape targets{when})")]
    try:
        out += _series_findings(source, at, when)
        topology, topo_findings = _topology(settings, source, at)
        out += topo_findings
        if topology is not None:
            out += _component_findings(source, topology, at, when)
            out += _node_findings(source, topology, at, settings.fit_window_hours)
    except MetricsSourceError as exc:
        out.append(Finding(False, str(exc)))
    return out


def _series_findings(source: PrometheusSource, at: datetime | None, when: str) -> list[Finding]:
    """Which of the metrics the reader asks for have series (one query for all of them)."""
    from analysis.catalog import XID_COUNT

    names = (*source.gpu_metrics, *source.node_metrics, XID_COUNT)
    selector = source.select('{__name__=~"' + "|".join(names) + '"}')
    present = {
        labels.get("__name__", "")
        for labels, _ in source.query(
            f"count by (__name__) ({selector})", at, what="expected series"
        )
    }
    out: list[Finding] = []
    gpu_missing = [m for m in source.gpu_metrics if m not in present]
    default_missing = [m for m in gpu_missing if m not in OPT_IN_DCGM]
    opt_missing = [m for m in gpu_missing if m in OPT_IN_DCGM]
    if len(gpu_missing) == len(source.gpu_metrics):
        out.append(
            Finding(
                False,
                f"no DCGM series at all{when}: check that dcgm-exporter is scraped by this "
                "Prometheus (and GPU_RISK_SERIES_SELECTOR, --at)",
            )
        )
        return out
    if default_missing:
        out.append(
            Finding(
                False,
                f"no series for {', '.join(default_missing)}{when}: check dcgm-exporter's "
                f"counters ({COUNTERS_HINT})",
            )
        )
    if opt_missing:
        out.append(
            Finding(
                False,
                f"no series for the opt-in counters {', '.join(opt_missing)}{when}: "
                f"{COUNTERS_HINT}",
            )
        )
    if not gpu_missing:
        out.append(Finding(True, f"all {len(source.gpu_metrics)} DCGM metrics have series{when}"))
    if XID_COUNT not in present:
        out.append(
            Finding(
                None,
                f"no {XID_COUNT} series{when}: it appears with the first XID once "
                f"dcgm-exporter reads deploy/dcgm-exporter/counters.csv",
            )
        )
    node_present = [m for m in source.node_metrics if m in present]
    if not node_present:
        out.append(
            Finding(
                None,
                f"no node exporter series ({', '.join(source.node_metrics[:3])}, ...){when}: "
                "fans, inlet temperature and node power will be missing (ipmi_exporter)",
            )
        )
    return out


def _topology(
    settings: Settings, source: PrometheusSource, at: datetime | None
) -> tuple[Topology | None, list[Finding]]:
    """The topology the bot would use, with its label/file disagreements."""
    from bot.wiring import discover_topology_of

    if not settings.topology_labels and settings.topology is None:
        return None, [Finding(None, "no topology: GPUs are scored without shared components")]
    try:
        found = discover_topology_of(settings, source, at)
    except (ConfigError, ValueError) as exc:
        return None, [Finding(False, str(exc))]
    topo = found.topology
    origin = "labels and file" if settings.topology_labels and settings.topology else None
    origin = origin or ("labels" if settings.topology_labels else "file")
    out = [
        Finding(
            True,
            f"topology from {origin}: {len(topo.racks)} racks, {len(topo.nodes)} nodes, "
            f"{len(topo.components)} components with metrics",
        )
    ]
    out += [Finding(None, f"topology conflict: {c}") for c in found.conflicts]
    out += [Finding(None, f"topology: {n}") for n in found.notes]
    return topo, out


def _component_findings(
    source: PrometheusSource, topology: Topology, at: datetime | None, when: str
) -> list[Finding]:
    """Each component metric's PromQL: accepted by the server and returning data."""
    from storage.source import MetricsSourceError

    pairs = [(c.id, n, q) for c in topology.components.values() for n, q in c.metrics.items()]
    out: list[Finding] = []
    bad = 0
    for cid, name, promql in pairs[:MAX_COMPONENT_QUERIES]:
        query = source.select(promql)
        try:
            series = source.query(query, at, what=f"{cid} {name}")
        except MetricsSourceError as exc:
            bad += 1
            out.append(Finding(False, f"component {cid} {name}: {exc}"))
            continue
        if not series:
            bad += 1
            out.append(
                Finding(
                    False,
                    f"component {cid} {name}: {promql!r} returns no data{when}: check its "
                    "metric and label names in the topology file",
                )
            )
    if len(pairs) > MAX_COMPONENT_QUERIES:
        out.append(Finding(None, f"checked the first {MAX_COMPONENT_QUERIES} of {len(pairs)}"))
    if pairs and not bad:
        out.append(Finding(True, f"all {len(pairs)} component metrics return data{when}"))
    return out


def _node_findings(
    source: PrometheusSource, topology: Topology, at: datetime | None, hours: int
) -> list[Finding]:
    """Topology node names against the DCGM node label over the fit window (a node down for a
    while still counts), closest names suggested."""
    label = source.labels["node"]
    metric = source.required_metrics[0] if source.required_metrics else source.gpu_metrics[0]
    when = f" in the {hours}h before {at.isoformat() if at is not None else 'now'}"
    query = f"count by ({label}) (count_over_time({source.select(metric)}[{hours}h]))"
    hosts = {
        labels[label]
        for labels, _ in source.query(query, at, what=f"DCGM {label} values")
        if labels.get(label)
    }
    if not hosts or not topology.nodes:
        return []
    nodes = set(topology.nodes)
    out: list[Finding] = []
    unmatched = sorted(hosts - nodes)
    for node in sorted(nodes - hosts):
        close = difflib.get_close_matches(node, unmatched or sorted(hosts), n=2, cutoff=0.6)
        hint = f": did you mean {' or '.join(close)}?" if close else ": check the name"
        out.append(
            Finding(
                False,
                f"topology node {node!r} has no DCGM series ({label}){when}{hint}",
            )
        )
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (
            f" (+{len(unmatched) - 5})" if len(unmatched) > 5 else ""
        )
        out.append(
            Finding(
                None,
                f"{len(unmatched)} DCGM host(s) are not in the topology ({shown}): they are "
                "scored without shared components",
            )
        )
    if not nodes - hosts:
        out.append(Finding(True, f"all {len(nodes)} topology nodes match DCGM's {label}"))
    return out


# ---------------------------------------------------------------------------------- Slack


def manifest_scopes(path: Path = MANIFEST) -> set[str] | None:
    """The bot scopes of the app manifest, or None when it cannot be read."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        scopes = data["oauth_config"]["scopes"]["bot"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return {str(s) for s in scopes}


def _header(headers: Any, name: str) -> str | None:
    """A response header, case-insensitively (slack_sdk keeps the server's spelling)."""
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def slack_findings(settings: Settings) -> list[Finding]:
    """auth.test, scopes against manifest.yml, each configured channel and the bot's membership."""
    from slack_sdk.errors import SlackApiError, SlackClientError

    from bot.slack.client import make_client

    if settings.slack_bot_token is None:
        return [Finding(False, "SLACK_BOT_TOKEN is not set")]
    client = make_client(
        settings.slack_bot_token.get_secret_value(),
        settings.slack_api_url,
        timeout=10,
        max_rate_limit_retries=1,
    )
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        return [
            Finding(
                False,
                f"Slack auth.test failed ({exc.response.get('error')}): check SLACK_BOT_TOKEN "
                "(the xoxb- token of the installed app) and SLACK_API_URL",
            )
        ]
    except (SlackClientError, OSError) as exc:
        return [
            Finding(
                False,
                f"cannot reach Slack at {redact_url(settings.slack_api_url)} "
                f"({type(exc).__name__}): check SLACK_API_URL and the network",
            )
        ]
    out = [Finding(True, f"Slack token works: @{auth.get('user')} in {auth.get('team')}")]
    granted = _header(auth.headers, "x-oauth-scopes")
    wanted = manifest_scopes()
    if granted is None or wanted is None:
        out.append(Finding(None, "cannot compare the token's scopes with manifest.yml"))
    else:
        missing = sorted(wanted - {s.strip() for s in granted.split(",")})
        if missing:
            out.append(
                Finding(
                    False,
                    f"the Slack token lacks scope(s) {', '.join(missing)}: add them under OAuth & "
                    "Permissions (or re-create the app from manifest.yml) and reinstall it",
                )
            )
        else:
            out.append(Finding(True, "the Slack token has every scope of manifest.yml"))
    channels = dict.fromkeys(
        c for c in (settings.slack_channel, *settings.slack_routes.values()) if c
    )
    for channel in channels:
        out.append(_channel_finding(client, channel))
    return out


def _channel_finding(client: Any, channel: str) -> Finding:
    """Whether ``channel`` (id or name) exists and the bot is a member of it."""
    from slack_sdk.errors import SlackApiError

    from bot.slack.notifier import CHANNEL_ID

    where = "(GPU_RISK_SLACK_CHANNEL / GPU_RISK_SLACK_ROUTES)"
    if not CHANNEL_ID.match(channel):
        return _channel_by_name(client, channel.lstrip("#"), where)
    try:
        info = client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error != "missing_scope":
            return Finding(
                False,
                f"Slack channel {channel}: {error}: check the id {where}; a private channel is "
                "visible only once the bot is invited (/invite @gpu-risk)",
            )
        return _membership_by_history(client, channel, where)
    data = info.get("channel") or {}
    name = f"#{data.get('name')} ({channel})" if data.get("name") else channel
    if data.get("is_archived"):
        return Finding(False, f"Slack channel {name} is archived: pick another {where}")
    if not data.get("is_member"):
        return Finding(
            False, f"the bot is not in Slack channel {name}: invite it there (/invite @gpu-risk)"
        )
    return Finding(True, f"the bot is in Slack channel {name}")


def _membership_by_history(client: Any, channel: str, where: str) -> Finding:
    """Without channels:read, reading one message tells whether the bot is in the channel."""
    from slack_sdk.errors import SlackApiError

    try:
        client.conversations_history(channel=channel, limit=1)
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error == "not_in_channel":
            return Finding(
                False,
                f"the bot is not in Slack channel {channel}: invite it there (/invite @gpu-risk)",
            )
        return Finding(False, f"Slack channel {channel}: {error}: check the id {where}")
    return Finding(True, f"the bot is in Slack channel {channel}")


def _channel_by_name(client: Any, name: str, where: str) -> Finding:
    """A channel given by name: found in conversations.list, and the bot a member."""
    from slack_sdk.errors import SlackApiError

    cursor: str | None = None
    try:
        while True:
            resp = client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for ch in resp.get("channels") or []:
                if ch.get("name") == name:
                    if not ch.get("is_member"):
                        return Finding(
                            False,
                            f"the bot is not in Slack channel #{name}: invite it there "
                            "(/invite @gpu-risk)",
                        )
                    return Finding(True, f"the bot is in Slack channel #{name} ({ch.get('id')})")
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
    except SlackApiError as exc:
        return Finding(
            False,
            f"cannot look up Slack channel #{name} ({exc.response.get('error')}): configure its "
            f"id (C...) instead {where}, or grant channels:read and groups:read",
        )
    return Finding(False, f"Slack channel #{name} not found: check the name {where}")


# ---------------------------------------------------------------------------------- Alertmanager


def alertmanager_findings(settings: Settings) -> list[Finding]:
    """Alertmanager answers /-/ready (or /api/v2/status) with the configured credentials."""
    import requests

    url = str(getattr(settings, "alertmanager_url", "") or "").rstrip("/")
    shown = redact_url(url)
    kwargs: dict[str, Any] = {"timeout": float(getattr(settings, "alertmanager_timeout", 10.0))}
    user = getattr(settings, "alertmanager_username", None)
    password = getattr(settings, "alertmanager_password", None)
    token = getattr(settings, "alertmanager_bearer_token", None)
    if user and password is not None:
        kwargs["auth"] = (user, password.get_secret_value())
    if token is not None:
        kwargs["headers"] = {"Authorization": f"Bearer {token.get_secret_value()}"}
    codes: list[str] = []
    for path in ("/-/ready", "/api/v2/status"):
        try:
            resp = requests.get(url + path, **kwargs)
        except requests.RequestException as exc:
            return [
                Finding(
                    False,
                    f"cannot reach Alertmanager at {shown} ({type(exc).__name__}): check "
                    "GPU_RISK_ALERTMANAGER_URL and that it is running",
                )
            ]
        if resp.status_code == 200:
            return [Finding(True, f"Alertmanager at {shown} is ready")]
        codes.append(f"{path} HTTP {resp.status_code}")
        if resp.status_code in (401, 403):
            break
    return [
        Finding(
            False,
            f"Alertmanager at {shown} is not ready ({', '.join(codes)}): check the URL and "
            "GPU_RISK_ALERTMANAGER_USERNAME/PASSWORD or BEARER_TOKEN",
        )
    ]


# ---------------------------------------------------------------------------------- summary


def _print_summary(settings: Settings) -> None:
    """Show the effective settings, secrets masked (credentials in URLs too)."""
    table = Table("setting", "value", title="effective configuration")
    for name, value in settings.model_dump().items():
        table.add_row(name, escape(_shown(name, value)))
    Console().print(table)


def _shown(name: str, value: object) -> str:
    """How one setting is shown: ``-`` when unset, ``***`` for secrets, URLs redacted."""
    if value is None:
        return "-"
    if any(word in name for word in ("token", "secret", "password")):
        return "***"
    if name == "prometheus_headers" and isinstance(value, dict):
        return ", ".join(f"{k}: ***" for k in value) or "{}"
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return redact_text(str(value))


def lines(findings: Iterable[Finding]) -> list[str]:
    """The printed lines of findings (tests and callers)."""
    return [f.line() for f in findings]
