"""The ``gpu-risk`` command line (typer): demo, run, scan, simulate, backtest, evaluate, check."""

from __future__ import annotations

import difflib
import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

# Each module exposes register(app). Imports inside command bodies stay lazy so that
# `gpu-risk --help` starts fast.
COMMAND_MODULES: tuple[str, ...] = (
    "bot.commands.backtest",
    "bot.commands.check",
    "bot.commands.demo",
    "bot.commands.eval",
    "bot.commands.evaluate",
    "bot.commands.outbox",
    "bot.commands.run",
    "bot.commands.scan",
    "bot.commands.simulate",
    "bot.commands.topology",
)

#: What `gpu-risk --help` lists without importing the command modules: per module, each command
#: it registers and the first paragraph of its help. tests/test_cli_startup.py checks it against
#: the modules; a module missing here still works (it is imported to be listed, more slowly).
COMMAND_INDEX: dict[str, tuple[tuple[str, str], ...]] = {
    "bot.commands.backtest": (
        (
            "backtest",
            "Replay history cycle by cycle and compare detectors: recall, lead time, false pages.",
        ),
    ),
    "bot.commands.check": (
        (
            "check",
            "Validate the configuration (environment, --config file, topology) and list problems.",
        ),
    ),
    "bot.commands.demo": (
        (
            "demo",
            "Run the alert flow on a simulated fleet with injected faults and show every alert.",
        ),
    ),
    "bot.commands.eval": (
        (
            "eval",
            "Replay the randomized scenario matrix in memory; strict scores with 95 % intervals.",
        ),
    ),
    "bot.commands.evaluate": (
        (
            "evaluate",
            "Evaluate the detector and root-cause ranking on labelled data; print per-machine "
            "tables.",
        ),
    ),
    "bot.commands.outbox": (
        (
            "outbox",
            "Notifications that could not be delivered: list them, send them again.",
        ),
    ),
    "bot.commands.run": (
        (
            "run",
            "Run the bot: scans on a schedule, alerts (Slack or terminal), /healthz and /metrics.",
        ),
    ),
    "bot.commands.scan": (
        (
            "scan",
            "Run one scan cycle against Prometheus and print the incidents (no Slack).",
        ),
    ),
    "bot.commands.simulate": (
        (
            "simulate",
            "Simulate a GPU fleet with injected faults (history files or a live exporter).",
        ),
    ),
    "bot.commands.topology": (
        (
            "topology",
            "Show the hardware topology the bot would use (from labels and/or topology.yaml).",
        ),
    ),
}

#: click's UsageError, wherever this typer version keeps click (vendored or not).
_USAGE_ERROR: type[Any] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

_TYPER_SETTINGS: dict[str, Any] = {
    "pretty_exceptions_enable": False,
    "add_completion": False,
}


def _print_version(value: bool) -> None:
    """``--version``: the installed package's version (its metadata), then exit."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"gpu-risk {version('gpu-risk')}")
    except PackageNotFoundError:
        typer.echo("gpu-risk (version unknown: not installed as a package; pip install -e .)")
    raise typer.Exit()


class LazyCommandGroup(TyperGroup):
    """The root group of the console script: a command's module is imported only when that
    command runs or shows its own help; ``gpu-risk --help`` lists :data:`COMMAND_INDEX`."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._loaded: dict[str, tuple[str, ...]] = {}
        self._listing = False

    def _index(self, module: str) -> tuple[tuple[str, str], ...]:
        """(command, first help paragraph) of one module, from the index if it is there."""
        if module in COMMAND_INDEX:
            return COMMAND_INDEX[module]
        self._load(module)
        return tuple(
            (name, (self.commands[name].short_help or self.commands[name].help or "").strip())
            for name in self._loaded[module]
        )

    def _load(self, module: str) -> None:
        """Import one command module and take over the commands it registers."""
        if module in self._loaded:
            return
        sub = typer.Typer(rich_markup_mode=self.rich_markup_mode, **_TYPER_SETTINGS)
        sub.callback()(lambda: None)  # a group even for a single command
        importlib.import_module(module).register(sub)
        commands = typer.main.get_group(sub).commands
        self.commands.update(commands)
        self._loaded[module] = tuple(commands)

    def list_commands(self, ctx: Any) -> list[str]:
        """Every command name, in module order, without importing indexed modules."""
        return [name for module in COMMAND_MODULES for name, _ in self._index(module)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The real command (importing its module), or a help-only stand-in while listing."""
        for module in COMMAND_MODULES:
            helps = dict(self._index(module))
            if cmd_name in helps:
                if self._listing:
                    return TyperCommand(name=cmd_name, help=helps[cmd_name])
                self._load(module)
                return self.commands.get(cmd_name)
        return None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's help lists the commands from the index, importing none of them."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """Resolve as typer does; suggest close names from the index (nothing is loaded yet)."""
        try:
            return super().resolve_command(ctx, args)
        except _USAGE_ERROR as exc:
            if self.suggest_commands and args and "Did you mean" not in exc.message:
                matches = difflib.get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    suggestions = ", ".join(repr(m) for m in matches)
                    exc.message = f"{exc.message.rstrip('.')}. Did you mean {suggestions}?"
            raise


def build_app(*, lazy: bool = False) -> typer.Typer:
    """Build the typer application with every sub-command registered.

    ``lazy=True`` (the console script) registers none: :class:`LazyCommandGroup` imports a
    command's module when it is used, so ``gpu-risk --help`` and ``--version`` import no
    pandas, scikit-learn, Slack or SQLAlchemy.
    """
    app = typer.Typer(
        name="gpu-risk",
        help="Warns about failing GPUs before they fail, grouped by root cause and explained.",
        no_args_is_help=True,
        cls=LazyCommandGroup if lazy else None,
        **_TYPER_SETTINGS,
    )

    @app.callback()
    def _root(
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                help="Show the installed version and exit.",
                callback=_print_version,
                is_eager=True,
            ),
        ] = False,
    ) -> None:
        """gpu-risk: graph-aware GPU failure risk, explained, in Slack."""

    if not lazy:
        for name in COMMAND_MODULES:
            importlib.import_module(name).register(app)
    return app


def main() -> None:
    """Entry point of the ``gpu-risk`` console script."""
    from bot import gc_tuning, malloc_tuning

    gc_tuning.tune()  # every command: a cycle's decoding otherwise feeds the collector
    malloc_tuning.tune()  # and the arrays a cycle frees go back to the system
    build_app(lazy=True)()
