"""The ``gpu-risk`` command line (typer): demo, run, scan, simulate, backtest, evaluate, check."""

from __future__ import annotations

import importlib

import typer

# Each module exposes register(app). Imports inside command bodies stay lazy so that
# `gpu-risk --help` starts fast.
COMMAND_MODULES: tuple[str, ...] = (
    "bot.commands.backtest",
    "bot.commands.check",
    "bot.commands.demo",
    "bot.commands.evaluate",
    "bot.commands.run",
    "bot.commands.scan",
    "bot.commands.simulate",
)


def build_app() -> typer.Typer:
    """Build the typer application with every sub-command registered."""
    app = typer.Typer(
        name="gpu-risk",
        help="Warns about failing GPUs before they fail, grouped by root cause and explained.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def _root() -> None:
        """gpu-risk: graph-aware GPU failure risk, explained, in Slack."""

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def main() -> None:
    """Entry point of the ``gpu-risk`` console script."""
    build_app()()
