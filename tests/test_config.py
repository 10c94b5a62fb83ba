"""Settings: seconds settings take a duration with its unit."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings


def test_seconds_settings_take_a_duration_with_its_unit() -> None:
    s = load_settings(None, scan_interval="5m", open_for="10m", prometheus_timeout="90s")
    assert (s.scan_interval, s.open_for, s.prometheus_timeout) == (300, 600, 90.0)
    assert load_settings(None, scan_interval="120").scan_interval == 120
    with pytest.raises(ConfigError, match="not a duration"):
        load_settings(None, open_for="soon")
    with pytest.raises(ConfigError, match="less than or equal"):
        load_settings(None, scan_interval="2h")
