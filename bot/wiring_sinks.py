"""The composition root's notification side: Slack, Alertmanager and the terminal, per cluster.

Part of the composition root (``bot/wiring.py`` re-exports what callers use): it builds the
Slack client, notifier, service and Bolt app (:func:`build_slack`), the Alertmanager sink
(:func:`build_alertmanager`), and wires them into a runtime: for the one cluster of a bot without
a clusters file (:func:`wire_sinks`, as before), or one set of sinks per cluster behind a
:class:`~bot.sinks.ByCluster` (each cluster's Slack channels and name, its Alertmanager labels)
with one Slack app and one ``/gpu-risk`` for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import networkx as nx
from pydantic import SecretStr

from analysis.types import Topology
from bot.clusters import Cluster
from bot.config import ConfigError, Settings, maintenance_windows
from bot.sinks import Sink
from storage.repository import Repository

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from bot.blocks.common import BlockOptions
    from bot.runtime import Runtime
    from bot.sinks.alertmanager import AlertmanagerSink
    from bot.slack.app import SlackBot
    from bot.slack.notifier import SlackNotifier
    from bot.slack.service import GraphImage


def _basic_auth(
    service: str, username: str | None, password: SecretStr | None
) -> tuple[str, str] | None:
    """``(user, password)`` for basic auth, None without a user; a user without password is an error."""
    if not username:
        return None
    if password is None:
        raise ConfigError(
            f"GPU_RISK_{service}_USERNAME is set but GPU_RISK_{service}_PASSWORD is not"
        )
    return username, password.get_secret_value()


# ---------------------------------------------------------------------------------- Slack


def block_options(settings: Settings) -> BlockOptions:
    """Builders' options from Settings: links and the label allowlist."""
    from bot.blocks.common import BlockOptions

    return BlockOptions(
        grafana_url=settings.grafana_url,
        prometheus_ui_url=settings.prometheus_ui_url,
        label_allowlist=frozenset(settings.slack_label_allowlist),
    )


def build_slack(
    settings: Settings,
    repository: Repository,
    *,
    topology: Topology | None = None,
    images: Callable[[int], Mapping[str, bytes]] | None = None,
    graph: Callable[[], nx.DiGraph] | None = None,
    graph_image: GraphImage | None = None,
    client: WebClient | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    min_interval: float = 1.0,
    token_verification: bool = True,
    clusters: Sequence[str] = (),
) -> SlackBot:
    """Compose the Slack side from Settings: client, notifier, service, Bolt app.

    ``clusters``: the clusters of a bot watching several (``/gpu-risk status`` lists each).
    """
    from bot.slack.app import SlackBot, build_app
    from bot.slack.client import make_client
    from bot.slack.notifier import SlackNotifier
    from bot.slack.service import SlackService, render_dependency_picture
    from bot.slack.verify import RepositoryReplayGuard
    from storage.redact import redact_url

    if client is None:
        if settings.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set: the bot token (xoxb-...) of your app")
        client = make_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
    notifier = SlackNotifier(
        client,
        settings.slack_routes,
        settings.slack_channel,
        options=block_options(settings),
        topology=topology,
        min_interval=min_interval,
        cluster=settings.cluster,
    )
    service = SlackService(
        repository,
        notifier,
        topology=topology,
        admins=settings.slack_admins,
        threshold=settings.threshold,
        data_source=redact_url(settings.prometheus_url or "metrics source"),
        # default: the PNGs the pipeline stored with the incident (Repository.images)
        images=images if images is not None else repository.images,
        graph=graph,
        graph_image=graph_image if graph_image is not None else render_dependency_picture,
        now=now,
        maintenance=maintenance_windows(settings.maintenance),
        clusters=clusters,
    )
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    app = build_app(
        service,
        client=client,
        signing_secret=secret,
        socket_mode=settings.slack_app_token is not None,
        token_verification=token_verification,
        # replays refused across replicas: the state store remembers signatures
        replay_guard=RepositoryReplayGuard(repository),
    )
    return SlackBot(app=app, service=service, notifier=notifier, client=client)


def build_alertmanager(
    settings: Settings,
    repository: Repository | None,
    topology: Topology | None,
    labels: Mapping[str, str] | None = None,
) -> AlertmanagerSink:
    """The Alertmanager sink of ``GPU_RISK_ALERTMANAGER_URL`` (auth, timeout, labels, links);
    ``labels``: a cluster's own (``alertmanager_labels``)."""
    from bot.sinks.alertmanager import AlertmanagerSink

    if not settings.alertmanager_url:
        raise ConfigError("GPU_RISK_ALERTMANAGER_URL is not set")
    basic = _basic_auth(
        "ALERTMANAGER", settings.alertmanager_username, settings.alertmanager_password
    )
    token = settings.alertmanager_bearer_token
    return AlertmanagerSink(
        settings.alertmanager_url,
        cluster=settings.cluster,
        extra_labels=dict(labels or {}),
        runbook_url=settings.runbook_url,
        grafana_url=settings.grafana_url,
        topology=topology,
        repository=repository,
        basic_auth=basic,
        bearer_token=token.get_secret_value() if token else None,
        timeout=settings.alertmanager_timeout,
        resend_interval=timedelta(seconds=settings.alertmanager_resend_seconds),
    )


def _wire_alertmanager(runtime: Runtime, topology: Topology) -> None:
    """Alertmanager mirrors Slack; without Slack it is the primary and the terminal mirrors it."""
    from bot.sinks.fanout import FanOut

    alertmanager = build_alertmanager(runtime.settings, runtime.repository, topology)
    if runtime.slack is not None:
        runtime.sink = FanOut(runtime.sink, alertmanager)
    else:
        runtime.sink = FanOut(alertmanager, runtime.sink)


def _wire_slack(runtime: Runtime, topology: Topology) -> None:
    """Slack notifier, service and Bolt app; outbox rows go out through the Slack sink."""
    from bot.sinks.slack import SlackSink

    bot = build_slack(
        runtime.settings,
        runtime.repository,
        topology=topology,
        images=runtime.repository.images,
        now=runtime.clock,
    )
    runtime.slack = bot
    runtime.sink = SlackSink(bot.service)


def wire_sinks(runtime: Runtime, topology: Topology) -> None:
    """The one cluster of a bot without a clusters file: the terminal, Slack, Alertmanager."""
    if runtime.settings.slack_bot_token is not None:
        _wire_slack(runtime, topology)
        _resolve_channels(runtime, runtime.slack.notifier)
    if runtime.settings.alertmanager_url:
        _wire_alertmanager(runtime, topology)


def wire_clusters(
    runtime: Runtime, clusters: Sequence[Cluster], topologies: Mapping[str, Topology]
) -> None:
    """One set of sinks per cluster, each row routed by its cluster (``ByCluster``): Slack
    through the cluster's notifier (its channels, else the global ones; its name in every
    message), Alertmanager with its ``cluster`` and extra labels, the terminal naming it. One
    Slack app and service answer for every cluster; the digest goes to the global channel (the
    first cluster's when there is none)."""
    from bot.sinks import ByCluster, FanOut
    from bot.sinks.slack import SlackSink

    settings, console = runtime.settings, runtime.sink
    if settings.slack_bot_token is not None:
        names = [c.key for c in clusters]
        runtime.slack = build_slack(
            settings, runtime.repository, images=runtime.repository.images, now=runtime.clock,
            clusters=names,
        )  # fmt: skip
    sinks: dict[str, Sink] = {}
    for c in clusters:
        sink: Sink = console
        if runtime.slack is not None:
            notifier = runtime.slack.notifier.for_cluster(
                c.name, c.settings.slack_routes, c.settings.slack_channel, topologies[c.name]
            )
            _resolve_channels(runtime, notifier)
            sink = SlackSink(runtime.slack.service, notifier=notifier)
        if settings.alertmanager_url:
            am = build_alertmanager(
                c.settings, runtime.repository.scoped(c.key), topologies[c.name], c.labels
            )
            sink = FanOut(sink, am) if runtime.slack is not None else FanOut(am, console)
        sinks[c.key] = sink
    default = sinks[clusters[0].key]
    if runtime.slack is not None and (settings.slack_channel or settings.slack_routes):
        _resolve_channels(runtime, runtime.slack.notifier)
        default = SlackSink(runtime.slack.service)
    runtime.sink = ByCluster(sinks, default)


def _resolve_channels(runtime: Runtime, notifier: SlackNotifier) -> None:
    """Channel names become ids at start-up; a clear error if one is unusable (runtime stopped)."""
    from slack_sdk.errors import SlackApiError

    from bot.slack.notifier import ChannelError

    try:
        notifier.resolve_channels()
    except (ChannelError, SlackApiError) as exc:
        runtime.stop()
        if isinstance(exc, ChannelError):
            raise ConfigError(str(exc)) from None
        raise ConfigError(
            f"cannot list Slack channels to resolve a channel name "
            f"({exc.response.get('error')}): grant the bot channels:read and groups:read, "
            "or configure channel ids (C...) instead of names"
        ) from None
