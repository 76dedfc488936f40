"""Ctrl-C during a build: the builder stops, the old tag stays, no temporary tag is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ember.engine import BuildRequest, atomic_build
from ember.engine.atomic import is_temp_tag, repository_of
from ember.engine.docker import DockerEngine
from engine_fixtures import TEST_REPO, Resources, unique

pytest_plugins = ["engine_fixtures"]  # engine, resources, base_image, ...
pytestmark = pytest.mark.engine

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from ember.engine import BuildRequest, atomic_build, default_engine
    from ember.events import event_to_dict

    def emit(event):
        print(json.dumps(event_to_dict(event), default=str), flush=True)

    try:
        atomic_build(default_engine(), BuildRequest(Path(sys.argv[1]), tags=(sys.argv[2],)), on_event=emit)
    except KeyboardInterrupt:
        print(json.dumps({"event": "interrupted"}), flush=True)
        sys.exit(130)
    """
)


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def test_sigint_during_build_keeps_old_tag_and_leaves_no_temp_tag(
    engine: DockerEngine, base_image: str, resources: Resources, tmp_path: Path
) -> None:
    repo = f"{TEST_REPO}/{unique('interrupt')}"
    ref = resources.image(f"{repo}:latest")
    old = tmp_path / "old"
    old.mkdir()
    (old / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo old > /version\n")
    before = atomic_build(engine, BuildRequest(old, tags=(ref,)))

    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo new > /version\nRUN echo sleeping && sleep 60  # {unique('n')}\n"
    )
    script = tmp_path / "build.py"
    script.write_text(SCRIPT)
    child = subprocess.Popen(
        [sys.executable, str(script), str(slow), ref],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events = []
    tmp_tag = None
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 120
        for line in child.stdout:
            event = json.loads(line)
            events.append(event)
            if event["event"] == "CommandStarted" and "--tag" in event["argv"]:
                argv = event["argv"]
                tmp_tag = argv[argv.index("--tag") + 1]
            if event["event"] == "StepStarted" and "sleep 60" in event["name"]:
                break
            assert time.monotonic() < deadline, "the sleep step never started"
        time.sleep(1.0)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        rest, err = child.communicate(timeout=60)
        stopped_after = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    events += [json.loads(line) for line in rest.splitlines() if line.strip()]

    assert child.returncode == 130, err
    assert events[-1] == {"event": "interrupted"}
    assert stopped_after < 30, "the build was not stopped promptly"
    assert tmp_tag is not None and is_temp_tag(tmp_tag)
    # The builder is gone and did not finish behind our back.
    assert processes_mentioning(tmp_tag) == []
    time.sleep(2)
    assert not engine.image_exists(tmp_tag)
    assert engine.inspect_image(ref).id == before.image_id
    assert engine.run(ref, ["cat", "/version"], network="none").stdout == "old\n"
    leftovers = [
        t
        for image in engine.list_images(f"{repo}:*")
        for t in image.tags
        if is_temp_tag(t) and repository_of(t) == repo
    ]
    assert leftovers == []
