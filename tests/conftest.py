"""Shared test fixtures: deterministic CLI runs, isolated from the user's machine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ember.cli import cli


@pytest.fixture(autouse=True, scope="session")
def _isolate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No colour, fixed width, and data/cache/state dirs private to this test session.

    Session-scoped, so module-scoped fixtures (which build images whose records
    later tests read) see the same folders as the tests; never the user's own.
    """
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_COLOR", "1")
        mp.setenv("COLUMNS", "100")
        mp.setenv("TERM", "dumb")
        mp.setenv("XDG_DATA_HOME", str(home / "data"))
        mp.setenv("XDG_CACHE_HOME", str(home / "cache"))
        mp.setenv("XDG_STATE_HOME", str(home / "state"))
        yield


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `ember ARGS...` through click's test runner, in the test's tmp_path.

    Returns click's Result (exit_code, stdout, stderr). Exceptions other than
    SystemExit are re-raised, so a traceback can never pass as an exit code.
    """
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def _run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return _run
