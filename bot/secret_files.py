"""Secret settings given as files: ``<NAME>_FILE`` variables and ``GPU_RISK_SECRETS_DIR``.

Every secret setting (the SecretStr fields, and the database URL, which may hold a password)
can also come from a file, so that a Kubernetes or Docker secret never has to be an environment
variable:

- ``<NAME>_FILE=/path``, e.g. ``SLACK_BOT_TOKEN_FILE=/var/run/secrets/gpu-risk/SLACK_BOT_TOKEN``:
  the file must exist, be readable and not be empty; setting both NAME and NAME_FILE is an error.
- ``GPU_RISK_SECRETS_DIR=DIR``: a file ``DIR/<NAME>`` (a mounted Secret's key) sets NAME; absent
  files are skipped.

Precedence: flags > NAME > NAME_FILE > DIR/<NAME> > --config file > defaults. Surrounding
whitespace (the trailing newline of ``echo token > file``) is stripped. ``bot.config`` reads
them through :class:`SecretFilesSource`, one of its settings sources.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from bot.config import ConfigError, Settings, _env_name

#: Environment variable naming the directory of secret files.
SECRETS_DIR_ENV = "GPU_RISK_SECRETS_DIR"
#: Suffix of the variables naming one secret's file.
FILE_SUFFIX = "_FILE"


def secret_fields() -> tuple[str, ...]:
    """Return the settings that may be read from files: every SecretStr field and database_url."""
    return tuple(
        name
        for name, info in Settings.model_fields.items()
        if SecretStr in (info.annotation, *get_args(info.annotation)) or name == "database_url"
    )


def file_env_names() -> dict[str, str]:
    """Return ``<NAME>_FILE`` -> field for every secret setting (e.g. SLACK_BOT_TOKEN_FILE)."""
    return {_env_name(field) + FILE_SUFFIX: field for field in secret_fields()}


def read_secret_files(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Return the secret settings given as files (input key -> value); ConfigError lists problems.

    A variable set directly wins over ``GPU_RISK_SECRETS_DIR``; one set together with its
    ``_FILE`` variable is an error (which one was meant is unknowable).
    """
    env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
    found: dict[str, str] = {}
    errors: list[str] = []
    secrets_dir = env.get(SECRETS_DIR_ENV) or None
    if secrets_dir is not None and not Path(secrets_dir).is_dir():
        errors.append(f"{SECRETS_DIR_ENV}: {secrets_dir} is not a directory")
        secrets_dir = None
    for field in secret_fields():
        name = _env_name(field)
        file_var = name + FILE_SUFFIX
        if file_var in env:
            if name in env:
                errors.append(f"both {name} and {file_var} are set: keep only one")
                continue
            value, error = _read_secret(Path(env[file_var]), file_var)
        elif secrets_dir is not None and name not in env and (Path(secrets_dir) / name).exists():
            value, error = _read_secret(Path(secrets_dir) / name, f"{SECRETS_DIR_ENV} ({name})")
        else:
            continue
        if error:
            errors.append(error)
        else:
            found[_source_key(field)] = value
    if errors:
        raise ConfigError("invalid secret files:\n  " + "\n  ".join(errors))
    return found


def _source_key(field: str) -> str:
    """The key other sources use for a field: its first validation alias, else its name.

    pydantic-settings normalises every source to that key; a second spelling of the same field
    (``slack_bot_token`` next to ``SLACK_BOT_TOKEN``) would be rejected as an extra input.
    """
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return alias if isinstance(alias, str) else field


def _read_secret(path: Path, source: str) -> tuple[str, str]:
    """Return (value, "") or ("", the problem) for one secret file."""
    if not path.exists():
        return "", f"{source}: {path} does not exist"
    if not path.is_file():
        return "", f"{source}: {path} is not a file"
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return "", f"{source}: {path} cannot be read ({reason})"
    if not value:
        return "", f"{source}: {path} is empty"
    return value, ""


class SecretFilesSource(PydanticBaseSettingsSource):
    """pydantic-settings source of the secret settings given as files (see above)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` reads every secret file at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Return field -> value for every secret given as a file."""
        return read_secret_files()
