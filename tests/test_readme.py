"""README stays true to the code: every setting documented, the two commands shown."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings, _env_name

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_configuration_table() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [
        _env_name(name) for name in Settings.model_fields if f"| `{_env_name(name)}` |" not in text
    ]
    assert not missing, f"README's configuration table lacks {missing}"


def test_readme_shows_the_two_commands_and_every_cli_command() -> None:
    from bot.cli import build_app

    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    app = build_app()
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    for name in names:
        assert f"gpu-risk {name}" in text, f"README does not mention `gpu-risk {name}`"
