"""The bundled example end to end, through the `ember` command and a real daemon.

Builds the demo's builder and runtime (making the Debian base with debootstrap
when it is missing), starts it with compose, asks it over HTTP on 127.0.0.1,
stops it and cleans exactly what it made. Then: a failed build and a Ctrl-C
keep the previous image under its tag; a git source served on loopback is
rebuilt when its ref moves and not when it stays.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ember import profiles
from ember.engine.atomic import is_temp_tag
from ember.engine.docker import DockerEngine

pytest_plugins = ["engine_fixtures"]
pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ember(
    *args: str, check: bool = True, timeout: float = 1200
) -> subprocess.CompletedProcess[str]:
    """Run the real `ember` command (a fresh process, as a user would)."""
    result = subprocess.run(
        [sys.executable, "-m", "ember", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, f"ember {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@dataclass
class Project:
    """A private copy of the demo profile: its own image names, port and source tree."""

    name: str
    spec: Path
    source: Path
    port: int

    @property
    def builder(self) -> str:
        return f"{self.name}-builder:latest"

    @property
    def runtime(self) -> str:
        return f"{self.name}:latest"


def make_project(
    root: Path, name: str, *, steps: list[str] | None = None, git: str | None = None
) -> Project:
    source = root / "src"
    if not source.exists():
        shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "dist"))
    port = _free_port()
    text = profiles.text("demo")
    text = text.replace('name = "ember-demo"', f'name = "{name}"', 1)
    if git:
        text = text.replace('path = "ember:examples/demo"', f'git = "{git}"\nref = "main"', 1)
    else:
        text = text.replace('path = "ember:examples/demo"', 'path = "src"', 1)
    text = text.replace("ports = [11434]", f"ports = [{port}]", 1)
    text = text.replace('DEMO_HOST = "0.0.0.0:11434"', f'DEMO_HOST = "0.0.0.0:{port}"', 1)
    if steps:
        text = text.replace(
            'ca_bundle = "host"', 'ca_bundle = "host"\nsteps = ' + json.dumps(steps), 1
        )
    spec = root / "ember.toml"
    spec.write_text(text, encoding="utf-8")
    return Project(name, spec, source, port)


def temp_tags(engine: DockerEngine, name: str) -> list[str]:
    return [
        t for img in engine.list_images() for t in img.tags if is_temp_tag(t) and t.startswith(name)
    ]


@pytest.fixture(scope="module")
def built(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The demo built once for this module (base made offline if missing); removed afterwards."""
    from engine_fixtures import unique

    project = make_project(tmp_path_factory.mktemp("demo"), unique("ember-it"))
    try:
        result = ember("--spec", str(project.spec), "build", "--bootstrap")
        assert f"built {project.builder}" in result.stdout
        assert f"built {project.runtime}" in result.stdout
        yield project
    finally:
        subprocess.run(
            [sys.executable, "-m", "ember", "--spec", str(project.spec), "down"],
            capture_output=True,
            check=False,
        )
        for ref in (project.runtime, project.builder):
            engine.remove_image(ref, force=True, missing_ok=True)


def test_build_up_answers_over_http_then_down(built: Project, engine: DockerEngine) -> None:
    labels = engine.inspect_image(built.runtime).labels
    assert labels["ember.project"] == built.name
    assert labels["ember.role"] == "runtime"
    up = ember("--spec", str(built.spec), "up", "--no-gpu")
    assert "(healthy)" in up.stdout
    assert f"listening on http://127.0.0.1:{built.port}/" in up.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{built.port}/api/version", timeout=10) as resp:
        assert json.load(resp) == {"version": "0.1.0"}
    with urllib.request.urlopen(f"http://127.0.0.1:{built.port}/api/tags", timeout=10) as resp:
        assert json.load(resp) == {"models": []}
    ps = ember("--spec", str(built.spec), "ps")
    assert "running (healthy)" in ps.stdout
    logs = ember("--spec", str(built.spec), "logs")
    assert "listening on" in logs.stdout
    ember("--spec", str(built.spec), "down")
    assert ember("--spec", str(built.spec), "ps").stdout.strip() == "not running"


def test_published_port_is_loopback_only(built: Project, engine: DockerEngine) -> None:
    ember("--spec", str(built.spec), "up", "--no-gpu")
    try:
        out = subprocess.run(
            [*engine.docker_cmd(), "port", built.name], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip().splitlines() == [f"{built.port}/tcp -> 127.0.0.1:{built.port}"]
    finally:
        ember("--spec", str(built.spec), "down")


def test_no_change_rebuild_reuses_everything(built: Project) -> None:
    result = ember("--spec", str(built.spec), "build")
    assert f"reused {built.builder}" in result.stdout
    assert f"built {built.runtime}" in result.stdout


def test_failed_build_keeps_the_previous_image(built: Project, engine: DockerEngine) -> None:
    before = engine.inspect_image(built.runtime).id
    core = built.source / "ml" / "core" / "core.cpp"
    good = core.read_text()
    core.write_text(good + "\nthis is not C++;\n")
    try:
        result = ember("--spec", str(built.spec), "build-runtime", check=False)
    finally:
        core.write_text(good)
    assert result.returncode == 1
    assert f"ember: error: build of `{built.runtime}` failed" in result.stderr
    assert engine.inspect_image(built.runtime).id == before
    assert temp_tags(engine, built.name) == []


def test_ctrl_c_keeps_the_previous_image(
    built: Project, engine: DockerEngine, tmp_path: Path
) -> None:
    before = engine.inspect_image(built.runtime).id
    slow = make_project(tmp_path, built.name, steps=["sleep 300"])
    shutil.rmtree(slow.source)
    shutil.copytree(built.source, slow.source)
    state = Path(os.environ["XDG_STATE_HOME"]) / "ember" / built.name / "logs"
    existing = set(state.glob("*")) if state.exists() else set()
    child = subprocess.Popen(
        [sys.executable, "-m", "ember", "--spec", str(slow.spec), "build-runtime"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            logs = [p / "build.log" for p in set(state.glob("*")) - existing]
            if any(p.exists() and "sleep 300" in p.read_text() for p in logs):
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.5)
        else:
            pytest.fail("the sleep step never started")
        time.sleep(1)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "ember: interrupted" in err
    assert "Traceback" not in err
    assert engine.inspect_image(built.runtime).id == before
    assert temp_tags(engine, built.name) == []


def test_clean_removes_exactly_what_this_spec_made(
    engine: DockerEngine, tmp_path: Path, base_image: str
) -> None:
    from engine_fixtures import unique

    project = make_project(tmp_path, unique("ember-it-clean"))
    other = f"{project.name}-other:keep"
    engine.tag(base_image, other)
    try:
        ember("--spec", str(project.spec), "build")
        assert engine.image_exists(project.builder) and engine.image_exists(project.runtime)
        result = ember("--spec", str(project.spec), "clean")
        assert sorted(result.stdout.split()) == sorted(
            ["removed", project.runtime, "removed", project.builder]
        )
        assert not engine.image_exists(project.runtime)
        assert not engine.image_exists(project.builder)
        assert engine.image_exists(other)
        assert engine.image_exists(base_image)
        assert ember("--spec", str(project.spec), "clean").stdout.strip() == "nothing to remove"
    finally:
        for ref in (project.runtime, project.builder, other):
            engine.remove_image(ref, force=True, missing_ok=True)


def test_missing_bootstrappable_base_names_the_command(
    tmp_path: Path, engine: DockerEngine
) -> None:
    from engine_fixtures import unique

    project = make_project(tmp_path, unique("ember-it-nobase"))
    text = project.spec.read_text().replace(
        'base = "ember/debian:bookworm"', 'base = "ember-it/absent:bookworm"', 1
    )
    project.spec.write_text(text)
    result = ember("--spec", str(project.spec), "build", check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "ember: error: the base image ember-it/absent:bookworm is not in the local image store, "
        "and this spec makes it offline rather than pulling it (make it with `ember base bootstrap "
        "ember-it/absent:bookworm --suite bookworm --mirror http://deb.debian.org/debian`, "
        "or rerun with --bootstrap)"
    )
    assert not engine.image_exists(project.builder)


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A git repository of the example, served by `git daemon` on 127.0.0.1."""
    base = tmp_path / "git"
    work = base / "demo.git"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("build", "dist"))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "one"],
    ):
        subprocess.run(argv, cwd=work, env=env, check=True)
    port = _free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"git://127.0.0.1:{port}/demo.git"
        deadline = time.monotonic() + 20
        while (
            subprocess.run(["git", "ls-remote", url], capture_output=True, check=False).returncode
            != 0
        ):
            assert time.monotonic() < deadline, "git daemon did not start"
            time.sleep(0.2)
        yield url, work
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def _clone_step_cached(log_dir: Path) -> bool:
    events = [json.loads(line) for line in (log_dir / "events.jsonl").read_text().splitlines()]
    names = {e["id"]: e["name"] for e in events if e["event"] == "StepStarted"}
    done = [
        e
        for e in events
        if e["event"] == "StepFinished" and "git clone" in names.get(e["id"], e.get("name", ""))
    ]
    assert done, "no clone step in the events"
    return all(e["cached"] for e in done)


def test_git_source_rebuilds_when_the_ref_moves(
    built: Project, engine: DockerEngine, git_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, work = git_server
    project = make_project(tmp_path, built.name, git=url)
    state = Path(os.environ["XDG_STATE_HOME"]) / "ember" / built.name / "logs"

    def build() -> tuple[str, Path]:
        before = set(state.glob("*")) if state.exists() else set()
        ember("--spec", str(project.spec), "build-runtime")
        (log_dir,) = set(state.glob("*")) - before
        return engine.inspect_image(built.runtime).labels[
            "org.opencontainers.image.revision"
        ], log_dir

    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True, check=True
    ).stdout.strip()
    first, _ = build()
    assert first == head
    again, log_again = build()
    assert again == head
    assert _clone_step_cached(log_again)
    (work / "README.md").write_text("moved\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", "commit", "-qam", "two"], cwd=work, env=env, check=True)
    moved = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True, check=True
    ).stdout.strip()
    third, log_third = build()
    assert third == moved != head
    assert not _clone_step_cached(log_third)


def test_a_changed_toolchain_rebuilds_the_builder(
    built: Project, engine: DockerEngine, tmp_path: Path
) -> None:
    changed = make_project(tmp_path, built.name)
    shutil.rmtree(changed.source)
    shutil.copytree(built.source, changed.source)
    text = changed.spec.read_text().replace(
        'CXX = "g++-12"', 'CXX = "g++-12"\nEMBER_IT = "changed"', 1
    )
    changed.spec.write_text(text)
    before = engine.inspect_image(built.builder).id
    plan = ember("--spec", str(changed.spec), "plan").stdout
    assert f"rebuild builder {built.builder} (present, but built from another toolchain)" in plan
    result = ember("--spec", str(changed.spec), "build")
    assert "was built from another toolchain: rebuilding it" in result.stderr
    assert f"built {built.builder}" in result.stdout
    assert engine.inspect_image(built.builder).id != before
    again = ember("--spec", str(changed.spec), "build")
    assert f"reused {built.builder}" in again.stdout
    plan = ember("--spec", str(changed.spec), "plan").stdout
    assert f"reuse builder {built.builder} (present, built from this toolchain)" in plan


def test_logs_follow_streams_until_ctrl_c(built: Project) -> None:
    ember("--spec", str(built.spec), "up", "--no-gpu")
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "ember", "--spec", str(built.spec), "logs", "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        first = child.stdout.readline()
        deadline = time.monotonic() + 30
        seen = first
        while "listening on" not in seen and time.monotonic() < deadline:
            seen += child.stdout.readline()
        assert "listening on" in seen
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
        assert child.returncode == 130
        assert err.strip() == "ember: interrupted"
    finally:
        ember("--spec", str(built.spec), "down")
