"""``gpu-risk outbox``: an admin lists dead notifications and sends them back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import build_app
from storage.repository import Repository

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def _dead_rows(url: str, n: int) -> list[int]:
    """Enqueue ``n`` data-source notes and let each fail for good."""
    repo = Repository.from_url(url)
    ids = []
    for i in range(n):
        row = repo.enqueue("data_source", None, {"state": "degraded"}, f"k{i}", at=T0)
        assert row is not None
        assert repo.mark_failed(row, "HTTP 403 not_in_channel", None, at=T0)
        ids.append(row)
    repo.close()
    return ids


def test_dead_notifications_are_listed_and_revived(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first, second = _dead_rows(url, 2)
    env = {"GPU_RISK_DATABASE_URL": url}
    runner = CliRunner()
    listed = runner.invoke(build_app(), ["outbox"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "not_in_channel" in listed.stdout and str(first) in listed.stdout
    bad = runner.invoke(build_app(), ["outbox", "--retry", "--id", "999"], env=env)
    assert bad.exit_code == 2 and "no dead notification with id 999" in bad.stderr
    one = runner.invoke(build_app(), ["outbox", "--retry", "--id", str(first)], env=env)
    assert one.exit_code == 0 and "1 notification(s)" in one.stdout
    repo = Repository.from_url(url)
    assert [i.id for i in repo.outbox(status="dead")] == [second]
    assert [i.id for i in repo.outbox(status="pending")] == [first]
    repo.close()
    rest = runner.invoke(build_app(), ["outbox", "--retry"], env=env)
    assert rest.exit_code == 0 and "1 notification(s)" in rest.stdout
    empty = runner.invoke(build_app(), ["outbox"], env=env)
    assert "no dead notifications" in empty.stdout
