"""The composition root: every object the bot runs on is built here from Settings, nowhere else.

CLI commands ask this module for what they need (a source, a pipeline, a store, the Slack side, a
whole runtime); they never construct those objects themselves.

- :func:`build_source`: the Prometheus reader (URL, auth, TLS, timeouts, label map);
- :func:`build_pipeline`: the one alert loop (``bot/pipeline.Pipeline``) with the configured
  scorer, explainer and model store; ``run``, ``scan``, ``backtest`` and ``demo`` all use it;
- :func:`build_slack`: client, notifier, service and Bolt app;
- :func:`build_runtime`: store, leader lock, pipeline, sinks and scheduler of ``gpu-risk run``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx
from pydantic import SecretStr

from analysis.scorer import Scorer, ScorerParams, UnknownScorerError, make_scorer
from analysis.types import Topology
from bot.config import ConfigError, Settings, maintenance_windows
from bot.pipeline import Pipeline
from bot.runtime import Clock, Runtime, make_clock
from bot.sinks import Sink
from bot.sinks.console import ConsoleSink
from bot.telemetry import BotMetrics
from storage.leader import make_leader_lock
from storage.repository import Repository
from storage.source import MetricsSource

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from analysis.explain import Explainer
    from bot.blocks.common import BlockOptions
    from bot.sinks.alertmanager import AlertmanagerSink
    from bot.slack.app import SlackBot
    from bot.slack.service import GraphImage
    from storage.discovery import Discovered

#: An in-memory store: a one-shot scan or a replay keeps its state apart from the bot's.
MEMORY_DB = "sqlite://"


def load_topology_of(settings: Settings, at: datetime | None = None) -> Topology:
    """The configured topology (``GPU_RISK_TOPOLOGY``), or an empty one (GPUs and nodes only).

    With ``GPU_RISK_TOPOLOGY_LABELS`` set: the topology discovered from metric labels at ``at``
    (default now), completed by the file (see :func:`discover_topology_of`).
    """
    from storage.topology import load_topology

    if settings.topology_labels:
        return discover_topology_of(settings, at=at).topology
    return load_topology(settings.topology) if settings.topology else Topology(racks=())


def discover_topology_of(
    settings: Settings, source: MetricsSource | None = None, at: datetime | None = None
) -> Discovered:
    """The topology and where each fact came from: labels (``GPU_RISK_TOPOLOGY_LABELS``, one
    instant query per metric through ``source`` or a reader of the settings) merged with the
    file, the file winning; without label discovery, the file alone."""
    from storage.discovery import discover_topology, file_only, parse_label_sources
    from storage.metrics import PrometheusSource
    from storage.source import MetricsSourceError
    from storage.topology import load_topology

    if not settings.topology_labels:
        return file_only(load_topology_of(settings))
    try:
        sources = parse_label_sources(settings.topology_labels)
    except ValueError as exc:
        raise ConfigError(f"GPU_RISK_TOPOLOGY_LABELS: {exc}") from None
    file = load_topology(settings.topology, partial=True) if settings.topology else None
    reader = source if isinstance(source, PrometheusSource) else build_source(settings, None)
    if not isinstance(reader, PrometheusSource):  # pragma: no cover - build_source's type
        raise ConfigError("topology from labels needs a Prometheus URL (GPU_RISK_PROMETHEUS_URL)")
    try:
        return discover_topology(
            reader, sources, file, node_label=settings.topology_node_label, at=at
        )
    except MetricsSourceError as exc:
        raise ConfigError(f"cannot read the topology from labels: {exc}") from None


def build_source(settings: Settings, topology: Topology | None) -> MetricsSource:
    """Build the Prometheus reader from the settings (URL, auth, TLS, timeouts, label map)."""
    from storage.metrics import PrometheusSource

    if not settings.prometheus_url:
        raise ConfigError("no Prometheus URL: pass --prometheus-url or set GPU_RISK_PROMETHEUS_URL")
    basic = _basic_auth("PROMETHEUS", settings.prometheus_username, settings.prometheus_password)
    token = settings.prometheus_bearer_token
    return PrometheusSource(
        settings.prometheus_url,
        topology=topology,
        bearer_token=token.get_secret_value() if token else None,
        basic_auth=basic,
        ca_file=str(settings.prometheus_ca_file) if settings.prometheus_ca_file else None,
        verify_tls=settings.prometheus_verify_tls,
        timeout=settings.prometheus_timeout,
        retries=settings.prometheus_retries,
        label_map=settings.label_map or None,
        series_selector=settings.series_selector,
        headers=settings.prometheus_headers or None,
    )


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


def open_repository(url: str) -> Repository:
    """The state store at ``url`` (migrated to head)."""
    return Repository.from_url(url)


def demo_sink(
    settings: Settings, repository: Repository, topology: Topology, out_dir: Path
) -> tuple[Sink, bool]:
    """The demo's destination: the terminal (Block Kit JSON and PNGs kept in ``out_dir``), and
    Slack first when a bot token and channel are set (its message is the one updates edit).

    Returns the sink and whether it also posts to Slack.
    """
    from bot.sinks import FanOut
    from bot.sinks.slack import SlackSink

    console = ConsoleSink(images=repository.images, out_dir=out_dir)
    if settings.slack_bot_token is None or not settings.slack_channel:
        return console, False
    service = build_slack(settings, repository, topology=topology).service
    return FanOut(SlackSink(service), console), True


def memory_repository() -> Repository:
    """A fresh in-memory store (for a one-shot scan or one detector of a replay)."""
    return Repository.from_url(MEMORY_DB)


def scorer_params(settings: Settings, fit_window: timedelta | None = None) -> ScorerParams:
    """The scorer parameters of the settings (``fit_window`` overrides the configured one)."""
    return ScorerParams(
        window=timedelta(minutes=settings.window_minutes),
        fit_window=fit_window or timedelta(hours=settings.fit_window_hours),
        threshold=settings.threshold,
        random_state=settings.random_state,
    )


def scorer_factory(
    settings: Settings, detector: str | None = None, fit_window: timedelta | None = None
) -> Callable[[], Scorer]:
    """A factory of fresh scorers of ``detector`` (default: ``GPU_RISK_DETECTOR``)."""
    name = detector or settings.detector
    params = scorer_params(settings, fit_window)
    try:
        make_scorer(name, params)
    except UnknownScorerError as exc:
        raise ConfigError(f"{exc} (--detector or GPU_RISK_DETECTOR)") from None
    return lambda: make_scorer(name, params)


@dataclass(frozen=True)
class PipelineOptions:
    """How a pipeline differs between the running bot, a scan, a replay and the demo.

    ``detector``: scorer name (default: the setting); ``explain``: DoWhy explanations;
    ``load_models``/``save_models``: the model store of ``GPU_RISK_MODEL_DIR``; ``render``: PNGs
    with each new incident; ``record_scores``: score history; ``fit_window``: overrides the
    setting (the demo's ``--fit-hours``).
    """

    detector: str | None = None
    explain: bool = True
    load_models: bool = True
    save_models: bool = True
    render: bool = True
    record_scores: bool = True
    fit_window: timedelta | None = None


#: A one-shot scan: the running bot's stored model if any, nothing written, no pictures.
SCAN = PipelineOptions(save_models=False, render=False, record_scores=False)
#: One detector of a replay: fitted only on the replay's past, never a stored model.
REPLAY = PipelineOptions(load_models=False, save_models=False, render=False, record_scores=False)


def build_pipeline(
    settings: Settings,
    *,
    source: MetricsSource,
    topology: Topology,
    repository: Repository,
    options: PipelineOptions = PipelineOptions(),
    metrics: BotMetrics | None = None,
) -> Pipeline:
    """The alert loop with the configured scorer, explainer and model store."""
    fit_window = options.fit_window or timedelta(hours=settings.fit_window_hours)
    new_scorer = scorer_factory(settings, options.detector, fit_window)
    learning = new_scorer().needs_history
    load_model, save_model = (
        _model_io(settings, repository, new_scorer) if learning else (None, None)
    )
    return Pipeline(
        source=source,
        topology=topology,
        repository=repository,
        make_scorer=new_scorer,
        make_explainer=_explainer(settings) if options.explain and learning else None,
        window=timedelta(minutes=settings.window_minutes),
        step=timedelta(seconds=settings.step_seconds),
        fit_window=fit_window,
        open_after=settings.open_after,
        close_after=settings.close_after,
        metrics=metrics,
        load_model=load_model if options.load_models else None,
        save_model=save_model if options.save_models else None,
        render=options.render,
        record_scores=options.record_scores,
        maintenance=maintenance_windows(settings.maintenance),
    )


def _explainer(settings: Settings) -> Callable[[], Explainer]:
    """A factory of the product's explainer (DoWhy imported only when it is called)."""

    def make() -> Explainer:
        """A fresh explainer (fitted with the scorer)."""
        from analysis.explain import Explainer

        return Explainer(random_state=settings.random_state)

    return make


def _model_io(
    settings: Settings, repository: Repository, new_scorer: Callable[[], Scorer]
) -> tuple[Callable[[nx.DiGraph], Scorer | None], Callable[[Scorer, datetime], None]]:
    """Load a stored model for this fleet; save (and index in the store) each refit."""
    from analysis.scoring import MODEL_VERSION, FeatureScorer, fleet_fingerprint
    from storage.model_store import model_store_for

    # With the state: next to the SQLite file, or in the database (PostgreSQL, in memory).
    store = model_store_for(settings.model_dir, settings.database_url, repository)

    def load(graph: nx.DiGraph) -> Scorer | None:
        """The stored model of this kind for this fleet, or None."""
        cls = type(new_scorer())
        if not issubclass(cls, FeatureScorer):
            return None
        return store.load(cls, fleet_fingerprint(graph))

    def save(scorer: Scorer, at: datetime) -> None:
        """Write the model file and record it."""
        if not isinstance(scorer, FeatureScorer):
            return
        path = store.save(scorer)
        repository.record_model(
            name=scorer.name,
            fleet_fingerprint=scorer.fingerprint_,
            features=list(scorer.columns_),
            version=str(MODEL_VERSION),
            path=str(path),
            fitted_at=at,
            metrics={"train_rows": int(scorer.n_train_rows_)},
        )

    return load, save


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
) -> SlackBot:
    """Compose the Slack side from Settings: client, notifier, service, Bolt app."""
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


# ---------------------------------------------------------------------------------- runtime


def build_runtime(
    settings: Settings,
    *,
    source: MetricsSource | None = None,
    clock: Clock | None = None,
    metrics: BotMetrics | None = None,
) -> Runtime:
    """Compose the bot from ``settings`` (``source`` replaces Prometheus, e.g. the simulator)."""
    clock = clock if clock is not None else make_clock(settings)
    metrics = metrics if metrics is not None else BotMetrics.create()
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    topology = load_topology_of(settings)
    src = source if source is not None else build_source(settings, topology)
    repository = Repository.from_url(settings.database_url)
    lock = make_leader_lock(
        repository.engine, worker_id, ttl=timedelta(seconds=max(3 * settings.scan_interval, 30))
    )
    pipeline = build_pipeline(
        settings, source=src, topology=topology, repository=repository, metrics=metrics
    )
    runtime = Runtime(
        settings=settings,
        repository=repository,
        lock=lock,
        pipeline=pipeline,
        metrics=metrics,
        sink=ConsoleSink(images=repository.images, log_path=settings.console_log),
        clock=clock,
        worker_id=worker_id,
    )
    if settings.slack_bot_token is not None:
        _wire_slack(runtime, topology)
        from slack_sdk.errors import SlackApiError

        from bot.slack.notifier import ChannelError

        try:  # channel names become ids at start-up; a clear error if one is unusable
            runtime.slack.notifier.resolve_channels()
        except (ChannelError, SlackApiError) as exc:
            runtime.stop()
            if isinstance(exc, ChannelError):
                raise ConfigError(str(exc)) from None
            raise ConfigError(
                f"cannot list Slack channels to resolve a channel name "
                f"({exc.response.get('error')}): grant the bot channels:read and groups:read, "
                "or configure channel ids (C...) instead of names"
            ) from None
    if settings.alertmanager_url:
        _wire_alertmanager(runtime, topology)
    return runtime


def build_alertmanager(
    settings: Settings, repository: Repository | None, topology: Topology | None
) -> AlertmanagerSink:
    """The Alertmanager sink of ``GPU_RISK_ALERTMANAGER_URL`` (auth, timeout, labels, links)."""
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


def backtest_pipelines(
    settings: Settings,
    source: MetricsSource,
    topology: Topology,
    *,
    detectors: Sequence[str],
    explain: bool = True,
    horizon: datetime | None = None,
) -> dict[str, Pipeline]:
    """One replay pipeline per detector, side by side on one cached source (one chunked fetch).

    Each has its own in-memory store and tracker and never reads a stored model (no model from
    the future); ``horizon`` (the last cycle) bounds what the cache fetches.
    """
    from storage.replay import CachedSource

    shared = CachedSource(source, horizon=horizon)
    pipelines = {
        name: build_pipeline(
            settings,
            source=shared,
            topology=topology,
            repository=memory_repository(),
            options=replace(REPLAY, detector=name, explain=explain),
        )
        for name in detectors
    }
    shared.lookback = max(p.window for p in pipelines.values())
    return pipelines
