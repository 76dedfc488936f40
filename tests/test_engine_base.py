"""`ember base bootstrap`: offline base images (debootstrap + import)."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ember import base as base_mod
from ember.base import BootstrapError, bootstrap_base_image, check_mirror, image_changes
from ember.engine.docker import DockerEngine
from engine_fixtures import TEST_BASE_IMAGE

pytest_plugins = ["engine_fixtures"]  # engine, base_image


class NoImages:
    """An engine on which no image exists (bootstrap must then check its prerequisites)."""

    def image_exists(self, ref: str) -> bool:
        return False


@pytest.fixture
def http_404() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/debian"
    finally:
        server.shutdown()


def test_changes_set_path_and_labels() -> None:
    changes = image_changes("bookworm", "http://m/debian", "minbase")
    assert changes[0] == "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert "LABEL org.ember.base.suite=bookworm" in changes


def test_missing_debootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_mod.proc, "which", lambda name, *a: None)
    with pytest.raises(BootstrapError, match="`debootstrap` is not installed") as caught:
        bootstrap_base_image(NoImages(), "x/y:1")  # type: ignore[arg-type]
    assert "apt-get install debootstrap" in (caught.value.hint or "")


def test_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_mod.proc, "which", lambda name, *a: f"/usr/sbin/{name}")
    monkeypatch.setattr(base_mod.os, "geteuid", lambda: 1000)
    with pytest.raises(BootstrapError, match="must run as root") as caught:
        bootstrap_base_image(NoImages(), "x/y:1")  # type: ignore[arg-type]
    assert "sudo" in (caught.value.hint or "")


def test_unreachable_mirror() -> None:
    with pytest.raises(
        BootstrapError, match=re.escape("cannot reach the Debian mirror http://127.0.0.1:9/debian")
    ):
        check_mirror("http://127.0.0.1:9/debian", "bookworm", timeout=5)


def test_unknown_suite(http_404: str) -> None:
    with pytest.raises(BootstrapError, match="has no suite `nosuch`"):
        check_mirror(http_404, "nosuch")


def test_cli_reports_errors_in_one_line(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli("base", "bootstrap", "no-tag")
    assert result.exit_code == 2 and "NAME:TAG" in result.output
    monkeypatch.setattr("ember.engine.default_engine", lambda **kw: NoImages())
    monkeypatch.setattr(base_mod.proc, "which", lambda name, *a: None)
    result = run_cli("base", "bootstrap", "x/y:1")
    assert result.exit_code == 1
    assert result.stderr == (
        "ember: error: `debootstrap` is not installed "
        "(install it: apt-get install debootstrap (or sudo scripts/setup-engine))\n"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_work_folder_removal_never_deletes_through_a_mount(tmp_path: Path) -> None:
    """An interrupted debootstrap leaves /proc-like mounts in its target: unmount, then delete."""
    work = tmp_path / "work"
    inside = work / "rootfs" / "proc"
    inside.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inside)], check=True)
    try:
        (inside / "precious").write_text("x")
        base_mod._remove_tree(work)
        assert not work.exists()
    finally:
        subprocess.run(["umount", "--lazy", str(inside)], capture_output=True, check=False)


@pytest.mark.engine
def test_existing_image_is_reused(engine: DockerEngine, base_image: str, run_cli: Any) -> None:
    result = bootstrap_base_image(engine, base_image)
    assert result.created is False and result.image.tags[:1] == (base_image,)
    assert result.image.labels["org.ember.base.suite"] == "bookworm"
    cli = run_cli("base", "bootstrap", base_image)
    assert cli.exit_code == 0
    assert cli.stdout.startswith(f"{TEST_BASE_IMAGE}: already there (")


@pytest.mark.engine
def test_base_image_is_debian_12_minbase(engine: DockerEngine, base_image: str) -> None:
    out = engine.run(
        base_image, ["sh", "-c", "cat /etc/debian_version; echo $PATH"], network="none"
    )
    version, path = out.stdout.split()
    assert version.startswith("12.")
    assert path == base_mod.DEFAULT_PATH
