"""From a validated spec to a plan: images, stages, toolchain decision and reasons.

Pure: no engine, no filesystem writes. What the engine knows (is the builder
present?) is passed in by the caller, so the plan can say what would be built
and why without touching anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ember.errors import EmberError, SpecError
from ember.spec import Loaded
from ember.spec.model import Spec, Tool

LOCAL_DOCKERFILE = "runtime/Dockerfile.local"
GIT_DOCKERFILE = "runtime/Dockerfile"
BUILDER_DOCKERFILE = "builder/Dockerfile"
EXAMPLES_PREFIX = "ember:examples/"


@dataclass(frozen=True)
class Toolchain:
    """The toolchain versions the builder provides (None: not installed)."""

    cuda: str | None
    gcc: str
    cmake: str | None
    go: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"cuda": self.cuda, "gcc": self.gcc, "cmake": self.cmake, "go": self.go}


@dataclass(frozen=True)
class TargetDecision:
    """What the build targets, and the resolver's verdict on the toolchain."""

    gpus: tuple[str, ...]
    cuda_architectures: str | None
    min_driver: str | None
    warnings: tuple[str, ...]
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "gpus": list(self.gpus),
            "cuda_architectures": self.cuda_architectures,
            "min_driver": self.min_driver,
            "warnings": list(self.warnings),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Plan:
    """Everything the renderers and the build need, decided once."""

    spec: Spec
    origin: str
    builder_image: str
    runtime_image: str
    source_kind: str  # "git" or "local"
    source_dir: Path | None  # the local tree (build context), when source_kind == "local"
    toolchain: Toolchain
    target: TargetDecision
    builder_state: str | None = None  # "missing", "stale", "current"; None: no engine asked
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def runtime_dockerfile(self) -> str:
        return LOCAL_DOCKERFILE if self.source_kind == "local" else GIT_DOCKERFILE

    def actions(self) -> list[str]:
        """What `ember build` would do, in words."""
        steps: list[str] = []
        builder = self.builder_image
        if self.builder_state == "current":
            steps.append(f"reuse builder {builder} (present, built from this toolchain)")
        elif self.builder_state == "stale":
            steps.append(f"rebuild builder {builder} (present, but built from another toolchain)")
        elif self.builder_state == "missing":
            steps.append(f"build builder {builder} (not in the local image store)")
        else:
            steps.append(f"build builder {builder} unless it is present (no engine answered)")
        src = self.spec.source
        if self.source_kind == "git":
            what = f"{src.git} at {src.ref} (resolved to a commit at build time)"
        else:
            what = f"the local tree {self.source_dir}"
        steps.append(
            f"build runtime {self.runtime_image} from {what}, using {self.runtime_dockerfile}"
        )
        return steps

    def to_json(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "origin": self.origin,
            "project": {"name": spec.project.name, "version": spec.project.version},
            "builder": {
                "image": self.builder_image,
                "dockerfile": BUILDER_DOCKERFILE,
                "base": spec.toolchain.base,
                "present": None if self.builder_state is None else self.builder_state != "missing",
                "state": self.builder_state,
            },
            "runtime": {
                "image": self.runtime_image,
                "dockerfile": self.runtime_dockerfile,
                "base": self.builder_image if spec.runtime.base == "builder" else spec.runtime.base,
                "ports": list(spec.runtime.ports),
                "publish_address": spec.compose.publish_address,
            },
            "source": {
                "kind": self.source_kind,
                "git": spec.source.git,
                "ref": spec.source.ref if self.source_kind == "git" else None,
                "path": str(self.source_dir) if self.source_dir else None,
            },
            "toolchain": self.toolchain.to_json(),
            "target": self.target.to_json(),
            "actions": self.actions(),
            "notes": list(self.notes),
        }


def _version(tool: Tool | None) -> str | None:
    return None if tool is None or tool.recipe == "none" else tool.version


def gcc_major(version: str) -> int:
    """The major version of a GCC version string ("10.5.0" -> 10)."""
    match = re.match(r"^(\d+)", version)
    if not match:  # the spec's Version pattern makes this unreachable; keep the error honest
        raise SpecError(f"GCC version {version!r} has no major number", key="toolchain.gcc.version")
    return int(match.group(1))


def bundled_examples_dir() -> Path:
    """Where the example projects bundled with ember live (installed or in a checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_examples", here.parent.parent / "examples"):
        if candidate.is_dir():
            return candidate
    raise EmberError("the bundled examples are missing from this installation of ember")


def source_dir(loaded: Loaded, override: str | None = None) -> Path | None:
    """The local source tree, resolved (override: `--local PATH`)."""
    raw = override if override is not None else loaded.spec.source.path
    if raw is None:
        return None
    if raw.startswith(EXAMPLES_PREFIX):
        return bundled_examples_dir() / raw[len(EXAMPLES_PREFIX) :]
    path = Path(raw)
    if not path.is_absolute():
        path = (Path.cwd() if override is not None else loaded.base_dir) / path
    return path.resolve()


def decide_target(spec: Spec) -> TargetDecision:
    """Check the toolchain against the target GPUs (through the resolver)."""
    target = spec.target
    cuda = spec.toolchain.cuda
    if not target.gpus or cuda is None or cuda.recipe == "none":
        return TargetDecision(
            (), target.cuda_architectures, None, (), ("no GPU target: CPU build",)
        )
    from ember import compat

    decision = compat.resolve(
        compat.Request(
            gpus=tuple(target.gpus),
            driver=target.driver,
            cuda=cuda.version,
            gcc=gcc_major(spec.toolchain.gcc.version),
            arch_mode=target.arch_mode,
            cuda_architectures=target.cuda_architectures,
        )
    )
    return TargetDecision(
        gpus=tuple(gpu.name for gpu in decision.gpus),
        cuda_architectures=decision.cuda_architectures,
        min_driver=decision.min_driver,
        warnings=tuple(decision.warnings),
        reasons=tuple(decision.reasons),
    )


def make_plan(loaded: Loaded, *, local: str | None = None) -> Plan:
    """Decide images, source and toolchain for a loaded spec."""
    spec = loaded.spec
    src_dir = source_dir(loaded, local)
    notes: list[str] = []
    if spec.project.version_missing:
        notes.append(
            "project.version is unset: the build will refuse to start "
            "(a 0.0.0 server gets HTTP 412 from the model registry)"
        )
    toolchain = Toolchain(
        cuda=_version(spec.toolchain.cuda),
        gcc=spec.toolchain.gcc.version,
        cmake=_version(spec.toolchain.cmake),
        go=_version(spec.toolchain.go),
    )
    return Plan(
        spec=spec,
        origin=loaded.origin,
        builder_image=spec.builder_image,
        runtime_image=spec.runtime_image,
        source_kind="local" if src_dir is not None else "git",
        source_dir=src_dir,
        toolchain=toolchain,
        target=decide_target(spec),
        notes=tuple(notes),
    )
