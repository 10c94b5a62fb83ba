"""Secrets from files: ``<NAME>_FILE`` variables and ``GPU_RISK_SECRETS_DIR`` (bot/secret_files.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, _env_name, load_settings
from bot.secret_files import file_env_names, read_secret_files, secret_fields

SECRET_ENV = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "GPU_RISK_PROMETHEUS_PASSWORD",
    "GPU_RISK_PROMETHEUS_BEARER_TOKEN",
    "GPU_RISK_ALERTMANAGER_PASSWORD",
    "GPU_RISK_ALERTMANAGER_BEARER_TOKEN",
    "GPU_RISK_DATABASE_URL",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No secret (nor its _FILE twin, nor the secrets dir) leaks in from the test's environment."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("GPU_RISK_", "SLACK_")):
            monkeypatch.delenv(name)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_every_secret_setting_has_a_file_variable() -> None:
    assert set(secret_fields()) == {
        "prometheus_bearer_token",
        "prometheus_password",
        "alertmanager_bearer_token",
        "alertmanager_password",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "database_url",
    }
    assert set(file_env_names()) == {f"{name}_FILE" for name in SECRET_ENV}
    for field in secret_fields():
        assert field in Settings.model_fields


def test_file_variables_set_every_secret_stripped_of_the_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "SLACK_BOT_TOKEN": "xoxb-from-file",
        "SLACK_SIGNING_SECRET": "signing-from-file",
        "SLACK_APP_TOKEN": "xapp-from-file",
        "GPU_RISK_PROMETHEUS_PASSWORD": "pw-from-file",
        "GPU_RISK_DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
    }
    for name, value in values.items():
        monkeypatch.setenv(f"{name}_FILE", str(_write(tmp_path / name.lower(), value + "\n")))
    monkeypatch.setenv("GPU_RISK_PROMETHEUS_USERNAME", "gpu-risk")
    settings = load_settings()
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-from-file"
    assert settings.slack_signing_secret is not None
    assert settings.slack_signing_secret.get_secret_value() == "signing-from-file"
    assert settings.slack_app_token is not None
    assert settings.slack_app_token.get_secret_value() == "xapp-from-file"
    assert settings.prometheus_password is not None
    assert settings.prometheus_password.get_secret_value() == "pw-from-file"
    assert settings.database_url == f"sqlite:///{tmp_path}/state.db"


def test_bearer_token_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "GPU_RISK_PROMETHEUS_BEARER_TOKEN_FILE", str(_write(tmp_path / "t", "  tok\r\n"))
    )
    token = load_settings().prometheus_bearer_token
    assert token is not None and token.get_secret_value() == "tok"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing", "does not exist"),
        (lambda d: _write(d / "empty", "\n"), "is empty"),
        (lambda d: d, "is not a file"),
        (lambda d: _write_bytes(d / "binary", b"\xff\xfe\x00"), "cannot be read"),
    ],
    ids=["missing", "empty", "directory", "not-utf8"],
)
def test_a_bad_file_is_a_clear_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: object, expected: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    monkeypatch.setenv("SLACK_BOT_TOKEN_FILE", str(path))
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "SLACK_BOT_TOKEN_FILE" in message and str(path) in message and expected in message
    assert "cannot read configuration" not in message  # not wrapped in a generic error


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "secret", "xoxb-1")
    path.chmod(0)
    try:
        monkeypatch.setenv("SLACK_BOT_TOKEN_FILE", str(path))
        with pytest.raises(ConfigError, match=r"SLACK_BOT_TOKEN_FILE: .* cannot be read"):
            load_settings()
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_both_the_variable_and_its_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-env")
    monkeypatch.setenv("SLACK_BOT_TOKEN_FILE", str(_write(tmp_path / "t", "xoxb-file")))
    with pytest.raises(ConfigError, match="both SLACK_BOT_TOKEN and SLACK_BOT_TOKEN_FILE"):
        load_settings()


def test_every_problem_is_listed_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN_FILE", str(tmp_path / "nope"))
    monkeypatch.setenv("GPU_RISK_PROMETHEUS_PASSWORD_FILE", str(_write(tmp_path / "e", "")))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "SLACK_APP_TOKEN_FILE" in str(info.value)
    assert "GPU_RISK_PROMETHEUS_PASSWORD_FILE" in str(info.value)


def test_secrets_dir_reads_files_named_like_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "SLACK_BOT_TOKEN", "xoxb-dir\n")
    _write(tmp_path / "GPU_RISK_DATABASE_URL", "postgresql://u:p@db/gpu_risk\n")
    monkeypatch.setenv("GPU_RISK_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-dir"
    assert settings.database_url == "postgresql://u:p@db/gpu_risk"
    assert settings.slack_app_token is None  # absent files are simply not set


def test_precedence_flag_env_file_dir_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    _write(secrets / "GPU_RISK_DATABASE_URL", "sqlite:///dir.db")
    _write(secrets / "SLACK_APP_TOKEN", "xapp-dir")
    _write(secrets / "SLACK_SIGNING_SECRET", "dir-secret")
    config = _write(
        tmp_path / "c.yaml",
        "database_url: sqlite:///yaml.db\nslack_bot_token: xoxb-yaml\nprometheus_password: y\n",
    )
    monkeypatch.setenv("GPU_RISK_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-env")  # the variable beats the directory
    monkeypatch.setenv("SLACK_SIGNING_SECRET_FILE", str(_write(tmp_path / "s", "file-secret")))
    monkeypatch.setenv("SLACK_BOT_TOKEN_FILE", str(_write(tmp_path / "b", "xoxb-file")))
    settings = load_settings(config, database_url="sqlite:///flag.db")
    assert settings.database_url == "sqlite:///flag.db"  # flag > directory > yaml
    assert settings.slack_app_token is not None
    assert settings.slack_app_token.get_secret_value() == "xapp-env"
    assert settings.slack_signing_secret is not None
    assert settings.slack_signing_secret.get_secret_value() == "file-secret"  # _FILE > directory
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-file"  # _FILE > yaml
    assert settings.prometheus_password is not None
    assert settings.prometheus_password.get_secret_value() == "y"  # yaml still applies


def test_secrets_dir_must_be_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_RISK_SECRETS_DIR", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"GPU_RISK_SECRETS_DIR: .* is not a directory"):
        load_settings()


def test_an_empty_file_in_the_secrets_dir_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "SLACK_BOT_TOKEN", "")
    monkeypatch.setenv("GPU_RISK_SECRETS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"GPU_RISK_SECRETS_DIR \(SLACK_BOT_TOKEN\): .* is empty"):
        load_settings()


def test_without_files_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_secret_files({}) == {}
    assert read_secret_files({"slack_bot_token": "x"}) == {}
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-plain")
    settings = load_settings()
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-plain"


def test_secret_values_never_reach_the_error_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conflict error names the variables, never their values."""
    monkeypatch.setenv("GPU_RISK_PROMETHEUS_PASSWORD", "CANARY-ENV")
    monkeypatch.setenv(
        "GPU_RISK_PROMETHEUS_PASSWORD_FILE", str(_write(tmp_path / "p", "CANARY-FILE"))
    )
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "CANARY" not in str(info.value)


def test_check_command_reports_a_missing_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bot.cli import build_app

    missing = tmp_path / "slack-bot-token"
    result = CliRunner().invoke(build_app(), ["check"], env={"SLACK_BOT_TOKEN_FILE": str(missing)})
    assert result.exit_code == 2
    assert f"SLACK_BOT_TOKEN_FILE: {missing} does not exist" in result.output
    assert "Traceback" not in result.output


def test_env_names_match_settings() -> None:
    for name in SECRET_ENV:
        assert any(_env_name(f) == name for f in Settings.model_fields), name


def test_a_hold_above_the_threshold_is_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hysteresis keeps incidents open below the opening threshold; above it would be nonsense."""
    monkeypatch.setenv("GPU_RISK_HOLD_RISK", "0.95")
    with pytest.raises(ConfigError, match=r"hold_risk \(0\.95\) must not exceed threshold"):
        load_settings(None)
    monkeypatch.setenv("GPU_RISK_HOLD_RISK", "0")
    assert load_settings(None).hold_risk == 0


def test_a_critical_quiet_shorter_than_the_quiet_is_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Critical evidence needs at least the quiet a warning needs; durations take units."""
    monkeypatch.setenv("GPU_RISK_CLOSE_FOR_CRITICAL", "10m")
    with pytest.raises(ConfigError, match=r"close_for_critical \(600 s\) must be at least"):
        load_settings(None)
    monkeypatch.setenv("GPU_RISK_CLOSE_FOR_CRITICAL", "2h")
    assert load_settings(None).close_for_critical == 7200
