"""Base images without a registry: debootstrap a Debian root filesystem, import it.

`bootstrap_base_image(engine, "ember/debian:bookworm")` runs
`debootstrap --variant=minbase SUITE DIR MIRROR` in a temporary folder, tars
the result and `docker import`s it with `ENV PATH=...` and labels saying
where it came from. An image already under that name is kept (unless
`force`), so a second call costs one inspect.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ember import proc
from ember.engine.interface import Engine, ImageInfo
from ember.errors import EngineError
from ember.events import CommandStarted, EventSink, LogLine, StepFinished, StepStarted, null_sink

DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBOOTSTRAP_TIMEOUT = 1800.0
MIRROR_TIMEOUT = 15.0
INSTALL_HINT = "install it: apt-get install debootstrap (or sudo scripts/setup-engine)"


class BootstrapError(EngineError):
    """A base image could not be made (debootstrap, tar or import failed)."""


@dataclass(frozen=True)
class BaseImage:
    ref: str
    image: ImageInfo
    created: bool  # False: it was already there
    seconds: float


def image_changes(suite: str, mirror: str, variant: str) -> list[str]:
    """The Dockerfile instructions `docker import` applies to the root filesystem."""
    return [
        f"ENV PATH={DEFAULT_PATH}",
        'CMD ["/bin/bash"]',
        f"LABEL org.ember.base.suite={suite}",
        f"LABEL org.ember.base.variant={variant}",
        f"LABEL org.ember.base.mirror={mirror}",
    ]


def check_mirror(mirror: str, suite: str, timeout: float = MIRROR_TIMEOUT) -> None:
    """Raise BootstrapError unless `MIRROR/dists/SUITE/Release` answers."""
    if not mirror.startswith(("http://", "https://")):
        return  # file:// or a local path: debootstrap will say
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise BootstrapError(
                f"the mirror {mirror} has no suite `{suite}` ({url}: HTTP 404)",
                hint="check --suite (bookworm, bullseye, trixie) and --mirror",
            ) from None
        raise BootstrapError(
            f"the Debian mirror {mirror} answered HTTP {exc.code} for {url}",
            hint="check --mirror, or try again later",
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BootstrapError(
            f"cannot reach the Debian mirror {mirror}: {reason}",
            hint="check the network (or a proxy), or pass --mirror URL of a reachable mirror",
        ) from None


def bootstrap_base_image(
    engine: Engine,
    ref: str,
    *,
    suite: str = DEFAULT_SUITE,
    mirror: str = DEFAULT_MIRROR,
    variant: str = "minbase",
    include: Sequence[str] = (),
    force: bool = False,
    workdir: Path | None = None,
    on_event: EventSink | None = None,
) -> BaseImage:
    """Make `ref` from a fresh Debian `suite`, unless it already exists (or `force`)."""
    sink = on_event or null_sink
    started = time.monotonic()
    if not force and engine.image_exists(ref):
        return BaseImage(ref, engine.inspect_image(ref), False, time.monotonic() - started)

    debootstrap = proc.which("debootstrap")
    if debootstrap is None:
        raise BootstrapError("`debootstrap` is not installed", hint=INSTALL_HINT)
    if os.geteuid() != 0:
        raise BootstrapError(
            "debootstrap must run as root (it makes device nodes and chroots)",
            hint=f"run it with sudo: sudo ember base bootstrap {ref}",
        )
    tar = proc.which("tar")
    if tar is None:
        raise BootstrapError("`tar` is not installed", hint="apt-get install tar")
    check_mirror(mirror, suite)

    work = Path(tempfile.mkdtemp(prefix="ember-debootstrap-", dir=workdir))
    rootfs = work / "rootfs"
    tarball = work / "rootfs.tar"
    try:
        argv = [debootstrap, f"--variant={variant}"]
        if include:
            argv.append("--include=" + ",".join(include))
        argv += [suite, os.fspath(rootfs), mirror]
        _step(
            sink,
            "debootstrap",
            f"debootstrap {suite} ({variant}) from {mirror}",
            argv,
            timeout=DEBOOTSTRAP_TIMEOUT,
        )
        # The rootfs needs no package cache; an image is smaller without it.
        for leftover in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        tar_argv = [
            tar,
            "--numeric-owner",
            "--xattrs",
            "-C",
            os.fspath(rootfs),
            "-c",
            "-f",
            os.fspath(tarball),
            ".",
        ]
        _step(sink, "tar", "pack the root filesystem", tar_argv, timeout=None)
        sink(StepStarted("import", f"import as {ref}", "base"))
        t0 = time.monotonic()
        try:
            image = engine.import_rootfs(
                tarball,
                ref,
                image_changes(suite, mirror, variant),
                message=f"ember base bootstrap {suite}",
            )
        except EngineError as exc:
            sink(
                StepFinished(
                    "import", f"import as {ref}", "base", False, time.monotonic() - t0, exc.message
                )
            )
            raise
        sink(StepFinished("import", f"import as {ref}", "base", False, time.monotonic() - t0))
    finally:
        _remove_tree(work)
    return BaseImage(ref, image, True, time.monotonic() - started)


def _step(
    sink: EventSink, step_id: str, name: str, argv: Sequence[str], timeout: float | None
) -> None:
    sink(CommandStarted(tuple(argv)))
    sink(StepStarted(step_id, name, "base"))
    t0 = time.monotonic()

    def on_line(stream: str, line: str) -> None:
        sink(LogLine(step_id, line))

    try:
        result = proc.stream(argv, on_line, timeout=timeout, check=False)
    except proc.CommandError as exc:
        sink(StepFinished(step_id, name, "base", False, time.monotonic() - t0, exc.message))
        raise BootstrapError(
            exc.message, command=exc.argv, returncode=exc.returncode, log_tail=exc.tail()
        ) from exc
    seconds = time.monotonic() - t0
    if result.ok:
        sink(StepFinished(step_id, name, "base", False, seconds))
        return
    tail = proc.tail_of(result.stdout + result.stderr, 30)
    last = proc.last_line(result.stderr) or proc.last_line(result.stdout)
    sink(StepFinished(step_id, name, "base", False, seconds, last or f"exit {result.returncode}"))
    hint = None
    if (
        "Failed getting release file" in tail
        or "Couldn't download" in tail
        or "Failure trying to run" in tail
    ):
        hint = "check --mirror and --suite, and that this machine reaches the mirror"
    raise BootstrapError(
        f"`{os.path.basename(argv[0])}` failed (exit {result.returncode}): {last}",
        command=argv,
        returncode=result.returncode,
        log_tail=tail,
        hint=hint,
    )


def _mounts_below(path: Path) -> list[str]:
    """Mount points at or below `path` (debootstrap mounts /proc and /sys in its target)."""
    root = os.path.realpath(path)
    found = []
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 2:
                    continue
                point = fields[1].encode().decode("unicode_escape")
                if point == root or point.startswith(root + os.sep):
                    found.append(point)
    except OSError:
        pass
    return sorted(found, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Remove a work folder, unmounting what an interrupted debootstrap left mounted first.

    Never deletes through a mount point: if one cannot be unmounted, the folder stays.
    """
    for point in _mounts_below(path):
        try:
            proc.run(["umount", "--lazy", point], check=False, timeout=60)
        except proc.CommandError:
            break
    if _mounts_below(path):
        return
    shutil.rmtree(path, ignore_errors=True)
