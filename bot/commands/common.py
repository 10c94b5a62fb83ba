"""What every CLI command shares: reading settings, and turning user mistakes into one line.

Imported by every command module when its command runs *or shows its help*, so it imports no
heavy library at module level (pandas, pydantic, SQLAlchemy, ...): ``gpu-risk <command> --help``
stays fast. What a command needs is imported inside the functions that run it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from storage.redact import install_redacting_filter, redact_text

if TYPE_CHECKING:
    from rich.progress import Progress

    from bot.config import Settings

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("gpu_risk")


class UserError(Exception):
    """A mistake the user can fix; the message says what was wrong and what to do."""


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix: a one-line message on stderr and exit code 2.

    Imported when a command runs (not when the CLI only shows help).
    """
    from bot.config import ConfigError
    from storage.source import MetricsSourceError
    from storage.topology import TopologyError

    return (
        UserError,
        ConfigError,
        TopologyError,
        MetricsSourceError,
        FileNotFoundError,
        PermissionError,
    )


def fail(message: str) -> typer.Exit:
    """Print a one-line error to stderr (credentials in URLs masked); return the Exit(2) to raise."""
    Console(stderr=True).print(
        f"[bold red]error:[/] {escape(redact_text(message))}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code=2)


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command so that user errors print one line and exit 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            raise typer.Exit(code=130) from None
        except Exception as exc:
            if isinstance(exc, user_errors()):
                raise fail(str(exc)) from None
            raise

    return wrapper


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """Read settings once for a command (flags override environment and file)."""
    from bot.config import load_settings

    return load_settings(config, **overrides)


# Times the CLI accepts (--at, --start, --end): frames are nanosecond timestamps (1677-2262).
MIN_YEAR, MAX_YEAR = 2000, 2200


def parse_at(value: str | None) -> Any:
    """Parse an ``--at`` style RFC 3339 option, or raise UserError saying the expected form."""
    if value is None:
        return None
    from analysis.types import parse_time

    shown = value if len(value) <= 40 else value[:37] + "..."
    try:
        when = parse_time(value)
    except (ValueError, OverflowError):
        raise UserError(f"{shown!r} is not an RFC 3339 time, e.g. 2026-11-22T10:00:00Z") from None
    if not MIN_YEAR <= when.year <= MAX_YEAR:
        raise UserError(
            f"{shown!r} is outside the years {MIN_YEAR}-{MAX_YEAR}: give a time your metrics "
            "cover, e.g. 2026-11-22T10:00:00Z"
        )
    return when


def setup_logging(verbose: bool = False) -> None:
    """Configure plain logging for the process (called once per command), credentials masked."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_redacting_filter()


def progress_bar(console: Console) -> Progress:
    """A transient progress bar on stderr, shown only on a terminal (never in pipes or logs)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


#: ``--prometheus-url`` as every command that reads Prometheus spells it.
PrometheusUrlOption = Annotated[
    str | None,
    typer.Option(
        "--prometheus-url", help="Prometheus (or PromQL API) base URL [GPU_RISK_PROMETHEUS_URL]"
    ),
]
#: ``--topology`` as every command that builds the dependency graph spells it.
TopologyOption = Annotated[
    Path | None, typer.Option("--topology", help="topology.yaml [GPU_RISK_TOPOLOGY]")
]

ConfigOption = typer.Option(
    None, "--config", "-c", help="YAML settings file", exists=False, dir_okay=False
)
