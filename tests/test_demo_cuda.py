"""demo-cuda: a real sm_37 CUDA build from Debian 12's packages (CUDA 11.8), end to end.

Slow (the CUDA toolkit is ~5 GB: about 3 minutes cold). Shows that the shipped
library holds an sm_37 cubin, by ember's fatbin reader and by the toolkit's own
`cuobjdump` run inside the image, and that the runtime starts on a machine
without a GPU and says so instead of crashing.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember import fatbin, profiles
from ember.engine.docker import DockerEngine
from test_integration_demo import Project, _free_port, ember

pytest_plugins = ["engine_fixtures"]
pytestmark = [pytest.mark.engine, pytest.mark.slow]

LIBRARY = "/usr/lib/demo/libdemo-cuda.so"


@pytest.fixture(scope="module")
def cuda_project(
    engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    from engine_fixtures import unique

    root = tmp_path_factory.mktemp("demo-cuda")
    name = unique("ember-it-cuda")
    port = _free_port()
    text = profiles.text("demo-cuda")
    text = text.replace('name = "ember-demo-cuda"', f'name = "{name}"', 1)
    text = text.replace("ports = [11434]", f"ports = [{port}]", 1)
    text = text.replace('DEMO_HOST = "0.0.0.0:11434"', f'DEMO_HOST = "0.0.0.0:{port}"', 1)
    spec = root / "ember.toml"
    spec.write_text(text, encoding="utf-8")
    project = Project(name, spec, root, port)
    try:
        result = ember("--spec", str(spec), "build", "--bootstrap", timeout=1800)
        assert "GPU code: native cubins for sm_37, sm_86" in result.stdout, result.stdout
        yield project
    finally:
        ember("--spec", str(spec), "down", check=False)
        for ref in (project.runtime, project.builder):
            engine.remove_image(ref, force=True, missing_ok=True)


def test_library_holds_an_sm37_cubin_by_two_readers(
    cuda_project: Project, engine: DockerEngine, tmp_path: Path
) -> None:
    lib = engine.copy_from_image(cuda_project.runtime, LIBRARY, tmp_path / "libdemo-cuda.so")
    ours = fatbin.read_gpu_code_file(lib)
    assert "sm_37" in ours.cubins
    assert ours.cubins == ("sm_37", "sm_86")
    assert ours.ptx == ()  # arch_mode real: no PTX, so no JIT at start
    listed = engine.run(
        cuda_project.runtime, ["cuobjdump", "--list-elf", LIBRARY], entrypoint="", network="none"
    ).stdout
    theirs = sorted(set(re.findall(r"\bsm_\d+\b", listed)), key=lambda s: int(s[3:]))
    assert tuple(theirs) == ours.cubins, listed
    nvcc = engine.run(
        cuda_project.builder, ["nvcc", "--version"], entrypoint="", network="none"
    ).stdout
    assert "release 11.8" in nvcc


def test_plan_reports_the_native_architectures(cuda_project: Project) -> None:
    data = json.loads(ember("--spec", str(cuda_project.spec), "plan", "--json").stdout)
    assert data["last_build"]["gpu"]["native"] == ["sm_37", "sm_86"]
    assert data["last_build"]["gpu"]["missing"] == []


def test_runtime_without_a_gpu_says_so_and_serves(cuda_project: Project) -> None:
    up = ember("--spec", str(cuda_project.spec), "up", "--no-gpu")
    assert "(healthy)" in up.stdout
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{cuda_project.port}/api/info", timeout=10
        ) as r:
            info = json.load(r)
        assert info["backend"] == "cpu"
        assert info["gpus"] == []
        assert info["notice"].startswith("no GPU found (cudaGetDeviceCount: ")
        assert info["compute"]["ok"] is True
        logs = ember("--spec", str(cuda_project.spec), "logs").stdout
        assert "no GPU found" in logs and "running on CPU" in logs
    finally:
        ember("--spec", str(cuda_project.spec), "down")


def test_up_with_the_gpu_reservation_names_missing_uvm_devices(cuda_project: Project) -> None:
    if Path("/dev/nvidia-uvm").exists():
        pytest.skip("this host has the UVM devices")
    result = ember("--spec", str(cuda_project.spec), "up", check=False)
    assert result.returncode == 1
    assert result.stderr == (
        "ember: error: /dev/nvidia-uvm, /dev/nvidia-uvm-tools missing on this host, and the "
        "compose service maps them (without them CUDA sees 0 GPUs) (create them with "
        "`nvidia-modprobe -u -c=0`, or run `ember up --no-gpu` on a host without NVIDIA GPUs)\n"
    )
