"""Compose through the engine: up waits until healthy, ps shows it, down removes it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ember.engine.docker import DockerEngine
from ember.engine.interface import EngineInfo
from ember.errors import EngineError
from ember.events import CommandStarted, Event
from engine_fixtures import Resources, unique

pytest_plugins = ["engine_fixtures"]  # engine, resources, base_image, ...
pytestmark = pytest.mark.engine

COMPOSE = """\
services:
  web:
    image: {image}
    command: ["sh", "-c", "sleep 1 && touch /tmp/ready && exec sleep 3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 20
  {extra}
"""

BROKEN = """\
  broken:
    image: {image}
    command: ["sh", "-c", "exec sleep 3600"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      timeout: 1s
      retries: 2
"""


def project_containers(engine: DockerEngine, project: str) -> list[str]:
    out = subprocess.run(
        [
            *engine.docker_cmd(),
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={project}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_up_waits_for_healthy_then_ps_and_down(
    engine: DockerEngine,
    engine_info: EngineInfo,
    base_image: str,
    resources: Resources,
    tmp_path: Path,
) -> None:
    if not engine_info.has_compose:
        pytest.skip("no compose (v2 plugin or v1)")
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text(COMPOSE.format(image=base_image, extra=""))
    project = resources.project(tmp_path, compose_file, unique("ember-test"))
    seen: list[Event] = []

    up = engine.compose(tmp_path, compose_file, project, "up", on_event=seen.append)
    assert [(s.service, s.state, s.health) for s in up.services] == [("web", "running", "healthy")]
    assert any(isinstance(e, CommandStarted) and "up" in e.argv for e in seen)

    ps = engine.compose(tmp_path, compose_file, project, "ps")
    assert [(s.service, s.state, s.health) for s in ps.services] == [("web", "running", "healthy")]
    assert ps.services[0].name.startswith(project)

    restarted = engine.compose(tmp_path, compose_file, project, "restart", ["--timeout", "1"])
    assert [(s.service, s.health) for s in restarted.services] == [("web", "healthy")]

    logs = engine.compose(tmp_path, compose_file, project, "logs")
    assert logs.verb == "logs"

    engine.compose(tmp_path, compose_file, project, "down", ["--timeout", "1"])
    assert engine.compose(tmp_path, compose_file, project, "ps").services == ()
    assert project_containers(engine, project) == []


def test_up_of_an_unhealthy_service_fails_with_the_logs(
    engine: DockerEngine,
    engine_info: EngineInfo,
    base_image: str,
    resources: Resources,
    tmp_path: Path,
) -> None:
    if not engine_info.has_compose:
        pytest.skip("no compose (v2 plugin or v1)")
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text(
        COMPOSE.format(image=base_image, extra=BROKEN.format(image=base_image).strip())
    )
    project = resources.project(tmp_path, compose_file, unique("ember-test"))
    with pytest.raises(EngineError) as caught:
        engine.compose(tmp_path, compose_file, project, "up", timeout=60)
    assert project in str(caught.value)
    assert caught.value.command and "up" in caught.value.command
    assert "logs" in (caught.value.hint or "")
