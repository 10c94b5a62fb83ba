"""Settings, read once at start-up: ``GPU_RISK_*`` variables, Slack's own variables, a YAML file.

Precedence: command-line flags > environment > ``--config`` YAML file > defaults. Nothing else in
the code base reads the environment.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from bot.clusters import ClusterSpec, read_clusters

if TYPE_CHECKING:
    from analysis.maintenance import MaintenanceWindow

DEFAULT_DATABASE_URL = "sqlite:///gpu-risk.db"


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem and how to fix it."""


#: Settings counted in seconds: each also takes a duration with a unit (``5m``).
_SECONDS_FIELDS: tuple[str, ...] = (
    "prometheus_timeout",
    "step_seconds",
    "open_for",
    "close_for",
    "close_for_critical",
    "sustained_for",
    "scan_interval",
    "outbox_lease_seconds",
    "alertmanager_timeout",
    "alertmanager_resend_seconds",
)


class Settings(BaseSettings):
    """Every setting of gpu-risk. Environment names are ``GPU_RISK_<FIELD>`` unless noted."""

    model_config = SettingsConfigDict(env_prefix="GPU_RISK_", extra="forbid", populate_by_name=True)

    # Metrics source
    prometheus_url: str | None = Field(None, description="Base URL of Prometheus or any PromQL API")
    prometheus_bearer_token: SecretStr | None = Field(
        None, description="Bearer token for Prometheus"
    )
    prometheus_username: str | None = Field(None, description="Basic-auth user for Prometheus")
    prometheus_password: SecretStr | None = Field(None, description="Basic-auth password")
    prometheus_ca_file: Path | None = Field(None, description="CA bundle for Prometheus TLS")
    prometheus_verify_tls: bool = Field(True, description="Verify Prometheus' TLS certificate")
    prometheus_timeout: float = Field(30.0, gt=0, description="Seconds per PromQL request")
    prometheus_retries: int = Field(2, ge=0, le=10, description="Retries per request, with backoff")
    prometheus_concurrency: int = Field(
        4,
        ge=1,
        le=10,  # storage.promql_client.MAX_CONCURRENCY
        description="PromQL requests in flight at once (a cycle's per-GPU reductions, beside its "
        "raw read; 1: one request at a time)",
    )
    topology: Path | None = Field(None, description="Path of topology.yaml")
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="Relabel map, e.g. {node: Hostname, gpu: gpu, instance: instance}",
    )
    series_selector: str | None = Field(
        None,
        description='Label matchers added to every query, e.g. {cluster="a"} (one cluster or tenant)',
    )
    prometheus_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers to Prometheus, e.g. {X-Scope-OrgID: tenant-a} (Mimir, Cortex)",
    )
    topology_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Topology from labels: role -> metric:label, e.g. "
        "{rack: kube_node_labels:label_topology_kubernetes_io_zone}; roles rack, switch, pdu, cooling",
    )
    topology_node_label: str = Field(
        "node", description="Label naming the node in the topology_labels metrics"
    )

    # Analysis
    detector: str = Field("graph", description="graph, iforest, ecod, copod, hbos or static")
    window_minutes: int = Field(30, ge=5, le=24 * 60, description="Feature window per scan")
    step_seconds: int = Field(60, ge=1, le=3600, description="Query resolution")
    fit_window_hours: int = Field(24, ge=1, le=24 * 30, description="History a model is fitted on")
    fit_max_gpus: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="Experimental: a larger fleet is fitted on a sample of whole nodes with about "
        "this many GPUs, stratified by rack and GPU model (every GPU is still scored, GPUs outside "
        "the sample against the fleet's levels: many false pages); 0: the whole fleet",
    )
    fit_max_rows: int = Field(
        200_000,
        ge=0,
        le=1_000_000_000,
        description="A fit learns from at most this many rows (cycles x GPUs): a larger fleet is "
        "fitted on fewer cycles of the same window (at least 16), every GPU keeping its own; "
        "0: 48 cycles whatever the fleet",
    )
    threshold: float = Field(0.9, gt=0, lt=1, description="Calibrated risk that counts as at-risk")
    hold_risk: float = Field(
        0.75,
        ge=0,
        lt=1,
        description="An open incident is not quiet while its GPUs' risk stays at least this "
        "(hysteresis below threshold: a GPU hovering at it is one incident, not a page per "
        "crossing); 0: none",
    )
    sustained_risk: float = Field(
        0.6,
        ge=0,
        lt=1,
        description="A GPU whose risk held at least this for sustained_for is at risk too, below "
        "the threshold (a slow fault no single cycle shows); 0: off",
    )
    sustained_for: int = Field(
        3600,
        ge=900,
        le=24 * 3600,
        description="Seconds (or 1h) the sustained risk must hold, judged every 15 minutes "
        "(a scan interval above 15 minutes never holds)",
    )
    open_after: int = Field(2, ge=1, le=60, description="Cycles above threshold to open")
    close_after: int = Field(5, ge=1, le=240, description="Cycles below threshold to close")
    open_for: int = Field(
        300,
        ge=0,
        le=24 * 3600,
        description="Seconds (or 5m) an at-risk streak must last to open, whatever the interval",
    )
    close_for: int = Field(
        1500,
        ge=0,
        le=7 * 24 * 3600,
        description="Seconds (or 25m) an incident must stay quiet to close, whatever the interval",
    )
    close_for_critical: int = Field(
        3 * 3600,
        ge=0,
        le=7 * 24 * 3600,
        description="Seconds (or 3h) an incident that was critical must stay quiet to close "
        "(hardware precursors come and go; at least close_for)",
    )
    random_state: int = Field(0, description="Seed of every estimator")
    maintenance: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "Maintenance windows (incidents recorded, not paged), e.g. [{target: rack-a1, "
            "days: [sun], at: '02:00', duration: 4h}]"
        ),
    )
    model_dir: Path | None = Field(
        None,
        description="Where fitted models are stored (default: with the state: next to the "
        "SQLite file, or in the PostgreSQL database)",
    )

    # State and runtime
    database_url: str = Field(
        DEFAULT_DATABASE_URL, description="SQLAlchemy URL; SQLite or PostgreSQL"
    )
    scan_interval: int = Field(60, ge=1, le=3600, description="Seconds between scans")
    refit_hour_utc: int = Field(3, ge=0, le=23, description="Hour of the daily model refit")
    digest_hour_utc: int = Field(9, ge=0, le=23, description="Hour of the daily digest")
    score_retention_days: int = Field(14, ge=1, le=3650, description="Days of score history kept")
    score_history_min: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A GPU's score joins the score history only at cycles it is at least this "
        "(the latest cycle's score of every GPU is always stored, and every score is the "
        "`gpu_risk_score` gauge on /metrics for your Prometheus to keep); 0: every GPU every cycle",
    )
    http_host: str = Field("0.0.0.0", description="Bind address of the HTTP server")
    http_port: int = Field(3000, ge=1, le=65535, description="/slack/events, /healthz, /metrics")
    outbox_lease_seconds: int = Field(
        120,
        ge=1,
        le=3600,
        description="A claimed notification is re-sent after this if unconfirmed",
    )
    outbox_max_attempts: int = Field(
        8,
        ge=1,
        le=100,
        description="Attempts per notification (backoff doubling from 30 s) before it is dead",
    )
    console_log: Path | None = Field(
        None, description="Without Slack: also append each notification as a JSON line here"
    )

    # Testing and demo aid: run the bot's clock from another instant, faster (replaying history).
    clock_start: datetime | None = Field(
        None, description="Testing/demo: the bot's clock reads this at clock_origin"
    )
    clock_origin: datetime | None = Field(
        None, description="Testing/demo: the real instant clock_start maps to (default: start-up)"
    )
    clock_speed: float = Field(
        1.0, gt=0, le=100_000, description="Testing/demo: simulated seconds per real second"
    )

    # Slack (standard Slack variable names, no prefix)
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "slack_signing_secret")
    )
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "slack_app_token")
    )
    slack_api_url: str = Field(
        "https://slack.com/api/",
        validation_alias=AliasChoices("SLACK_API_URL", "slack_api_url"),
        description="Slack Web API base URL (GovSlack and some Grid setups differ)",
    )
    slack_channel: str | None = Field(None, description="Default alert channel id or name")
    slack_routes: dict[str, str] = Field(
        default_factory=dict,
        description="Channel per severity or rack, e.g. {critical: C123, rack-a1: C456}",
    )
    slack_admins: list[str] = Field(
        default_factory=list, description="User or group ids allowed to silence and acknowledge"
    )
    slack_label_allowlist: list[str] = Field(
        default_factory=lambda: ["Hostname", "gpu", "modelName", "UUID", "pci_bus_id"],
        description="Labels that may be shown in Slack",
    )
    grafana_url: str | None = Field(None, description="Grafana base URL for links in alerts")
    prometheus_ui_url: str | None = Field(None, description="Prometheus UI URL for links")

    # Alertmanager: a destination beside Slack (a mirror) or instead of it
    alertmanager_url: str | None = Field(
        None, description="Alertmanager base URL: incidents are pushed to its /api/v2/alerts"
    )
    alertmanager_username: str | None = Field(None, description="Basic-auth user for Alertmanager")
    alertmanager_password: SecretStr | None = Field(
        None, description="Basic-auth password for Alertmanager"
    )
    alertmanager_bearer_token: SecretStr | None = Field(
        None, description="Bearer token for Alertmanager"
    )
    alertmanager_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds per Alertmanager request"
    )
    alertmanager_resend_seconds: int = Field(
        60,
        ge=5,
        le=3600,
        description="Open incidents are re-sent to Alertmanager this often (a push lasts 4 of these)",
    )
    cluster: str = Field(
        "",
        description="Name of the one cluster watched (no clusters file): named in messages, "
        "the cluster label of alerts and metrics (empty: none)",
    )
    clusters: Annotated[tuple[ClusterSpec, ...], NoDecode] = Field(
        (),
        description="Clusters file (YAML): one bot watches several clusters, each with its own "
        "Prometheus, selector, headers, topology, channel and alert labels (see Several clusters)",
    )
    runbook_url: str | None = Field(
        None, description="runbook_url annotation of Alertmanager alerts"
    )

    @model_validator(mode="after")
    def _hold_below_threshold(self) -> Settings:
        """The hold risk keeps incidents open below the opening threshold, never above it."""
        if self.hold_risk > self.threshold:
            raise ValueError(
                f"hold_risk ({self.hold_risk}) must not exceed threshold ({self.threshold}): "
                "lower GPU_RISK_HOLD_RISK, or set it to 0 for no hysteresis"
            )
        return self

    @model_validator(mode="after")
    def _sustained_below_threshold(self) -> Settings:
        """The sustained risk is a second level below the threshold, never above it."""
        if self.sustained_risk >= self.threshold:
            raise ValueError(
                f"sustained_risk ({self.sustained_risk}) must be below threshold "
                f"({self.threshold}): lower GPU_RISK_SUSTAINED_RISK, or set it to 0 for none"
            )
        if self.sustained_for % 900:
            raise ValueError(
                f"sustained_for ({self.sustained_for} s) must be a whole number of 15-minute "
                "checkpoints: set GPU_RISK_SUSTAINED_FOR to e.g. 1h, 45m or 2h"
            )
        return self

    @model_validator(mode="after")
    def _critical_quiet_at_least_quiet(self) -> Settings:
        """Critical evidence needs at least the quiet spell a warning needs to close."""
        if self.close_for_critical < self.close_for:
            raise ValueError(
                f"close_for_critical ({self.close_for_critical} s) must be at least close_for "
                f"({self.close_for} s): raise GPU_RISK_CLOSE_FOR_CRITICAL or lower "
                "GPU_RISK_CLOSE_FOR"
            )
        return self

    @field_validator("alertmanager_url", "runbook_url")
    @classmethod
    def _alertmanager_http_url(cls, value: str | None) -> str | None:
        """Alertmanager and runbook URLs must start with http:// or https://."""
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value

    @field_validator("prometheus_url", "slack_api_url", "grafana_url", "prometheus_ui_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """URLs must start with http:// or https://."""
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        """slack_sdk needs the base URL to end with a slash."""
        return value if value.endswith("/") else value + "/"

    @field_validator("clock_start", "clock_origin")
    @classmethod
    def _aware_time(cls, value: datetime | None) -> datetime | None:
        """Clock instants need a time zone (e.g. 2026-11-18T02:00:00Z)."""
        if value is not None and value.utcoffset() is None:
            raise ValueError("give a time zone, e.g. 2026-11-18T02:00:00Z")
        return value

    @field_validator("maintenance")
    @classmethod
    def _maintenance(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every window must be usable: the message names the window and the field."""
        maintenance_windows(value)
        return value

    @field_validator("clusters", mode="before")
    @classmethod
    def _clusters(cls, value: Any) -> tuple[ClusterSpec, ...]:
        """Read and check the clusters file (or an inline list): one line per problem."""
        return read_clusters(value)

    @field_validator("series_selector")
    @classmethod
    def _series_selector(cls, value: str | None) -> str | None:
        """The selector must be PromQL label matchers."""
        from storage.metrics import parse_selector

        parse_selector(value)
        return value

    @field_validator("topology_labels")
    @classmethod
    def _topology_labels(cls, value: dict[str, str]) -> dict[str, str]:
        """Every role must be known and every source ``metric:label``."""
        from storage.discovery import parse_label_sources

        parse_label_sources(value)
        return value

    @field_validator(*_SECONDS_FIELDS, mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        """A seconds setting also takes a duration with its unit: ``90s``, ``5m``, ``4h``."""
        if not isinstance(value, str) or not value.strip() or value.strip()[-1].isdigit():
            return value  # a number: pydantic checks it
        from bot.durations import parse_duration

        return parse_duration(value, bare_seconds=True, what="this setting").total_seconds()

    @field_validator("detector")
    @classmethod
    def _detector(cls, value: str) -> str:
        """The detector must be one we ship."""
        from analysis.scorer import SCORERS

        allowed = tuple(SCORERS)
        if value not in allowed:
            raise ValueError(f"unknown detector {value!r}; choose one of {', '.join(allowed)}")
        return value


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings once: flags (``overrides``) > environment > YAML file > defaults."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(
            f"config file {config_file} not found (pass an existing YAML file to --config)"
        )
    yaml_path = config_file

    class _FileSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            from bot.secret_files import SecretFilesSource

            sources.append(SecretFilesSource(settings_cls))  # <NAME>_FILE, GPU_RISK_SECRETS_DIR
            if yaml_path is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
            return tuple(sources)

    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings.model_validate(_FileSettings(**clean).model_dump())
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except Exception as exc:  # yaml errors, unreadable files
        raise ConfigError(f"cannot read configuration: {exc}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic error into one line per problem, naming the variable to set."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "config"
        env = _env_name(field.split(".")[0])
        # a validator may report several problems, one per line (the clusters file)
        for part in str(err["msg"]).removeprefix("Value error, ").splitlines():
            lines.append(f"{field} ({env}): {part}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _env_name(field: str) -> str:
    """Return the environment variable that sets a field."""
    if field.startswith("slack_") and field in {
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "slack_api_url",
    }:
        return field.upper()
    return f"GPU_RISK_{field.upper()}"


def problems(settings: Settings, *, needs: tuple[str, ...] = ()) -> list[str]:
    """Return what is missing or inconsistent for the given needs (prometheus, slack, ...)."""
    out: list[str] = []
    if settings.clusters:
        return out + _cluster_problems(settings, needs)
    if "prometheus" in needs and not settings.prometheus_url:
        out.append("GPU_RISK_PROMETHEUS_URL is not set: give the base URL of your Prometheus")
    if settings.prometheus_username and not settings.prometheus_password:
        out.append("GPU_RISK_PROMETHEUS_USERNAME is set but GPU_RISK_PROMETHEUS_PASSWORD is not")
    if settings.prometheus_bearer_token and settings.prometheus_username:
        out.append("set either a bearer token or basic auth for Prometheus, not both")
    if settings.prometheus_ca_file and not settings.prometheus_ca_file.is_file():
        out.append(f"GPU_RISK_PROMETHEUS_CA_FILE: {settings.prometheus_ca_file} does not exist")
    if settings.topology is not None and not settings.topology.is_file():
        out.append(f"GPU_RISK_TOPOLOGY: {settings.topology} does not exist")
    if "slack" in needs:
        if not settings.slack_bot_token:
            out.append(
                "SLACK_BOT_TOKEN is not set: the bot token (xoxb-...) from your app's OAuth page"
            )
        elif not settings.slack_bot_token.get_secret_value().startswith("xoxb-"):
            out.append("SLACK_BOT_TOKEN should start with xoxb- (a bot token, not a user token)")
        if not settings.slack_app_token and not settings.slack_signing_secret:
            out.append(
                "set SLACK_APP_TOKEN (xapp-..., Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)"
            )
        if settings.slack_app_token and not settings.slack_app_token.get_secret_value().startswith(
            "xapp-"
        ):
            out.append("SLACK_APP_TOKEN should start with xapp- (an app-level token)")
        if not settings.slack_channel and not settings.slack_routes:
            out.append("GPU_RISK_SLACK_CHANNEL is not set: the channel alerts go to")
    return out


def _cluster_problems(settings: Settings, needs: tuple[str, ...]) -> list[str]:
    """``problems`` of each cluster of the clusters file: a problem every cluster has is said
    once, one of some clusters only names them (``cluster b: ...``)."""
    from bot.clusters import clusters_of

    out = []
    if settings.cluster:
        out.append("set GPU_RISK_CLUSTER (one cluster) or GPU_RISK_CLUSTERS (a file), not both")
    found = {c.name: problems(c.settings, needs=needs) for c in clusters_of(settings)}
    common = [p for p in next(iter(found.values())) if all(p in f for f in found.values())]
    out += common
    out += [f"cluster {name}: {p}" for name, f in found.items() for p in f if p not in common]
    return out


def maintenance_windows(raw: list[dict[str, Any]]) -> list[MaintenanceWindow]:
    """Build the configured maintenance windows (``ValueError`` naming the bad field)."""
    from analysis.maintenance import window_from_mapping
    from analysis.types import parse_time
    from bot.durations import parse_duration

    return [window_from_mapping(item, parse_duration, parse_time) for item in raw]
