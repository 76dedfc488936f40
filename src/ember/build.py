"""The build verbs' work: preflight, builder, runtime, clean, and the GPU-code report.

This is the layer between the CLI and the engine. It decides nothing the plan
has not decided already; it checks what must hold before a long build starts,
renders the files into a private work folder, and drives the engine through
atomic builds, so a failure or Ctrl-C never moves a good tag.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ember import proc
from ember.engine import BuildRequest, Engine, atomic_build
from ember.errors import EmberError, EngineError, SpecError, UsageError
from ember.events import EventSink, Warn, null_sink
from ember.plan import BUILDER_DOCKERFILE, Plan
from ember.render import CA_SECRET_ID, render_all, render_builder

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
GIT_TIMEOUT = 60.0
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class BuildOptions:
    """What the build verbs were asked for."""

    no_cache: bool = False
    ref: str | None = None  # overrides [source] ref
    bootstrap: bool = False  # make a missing bootstrappable base
    jobs: int | None = None
    rebuild_builder: bool = False


@dataclass
class Outcome:
    """What a build verb did, for the summary and the report."""

    built: list[tuple[str, float]] = field(default_factory=list)  # (image, seconds)
    reused: list[str] = field(default_factory=list)
    commit: str | None = None
    gpu_report: dict[str, Any] | None = None


def state_dir(project: str) -> Path:
    """Per-project folder for rendered files, logs and the last build's report."""
    import platformdirs

    return Path(platformdirs.user_state_dir("ember")) / project


KEEP_LOGS = 20


def new_log_dir(project: str) -> Path:
    """A fresh per-build log folder; only the newest KEEP_LOGS folders are kept."""
    logs = state_dir(project) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    taken = [p.name.rsplit("-", 1)[-1] for p in logs.glob(f"{stamp}-*")]
    n = max((int(t) for t in taken if t.isdigit()), default=0)
    while True:
        n += 1
        folder = logs / f"{stamp}-{n:03d}"
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue  # another ember made it a moment ago
    # Names sort by time: YYYYmmdd-HHMMSS-001, then -002, -003... within one second.
    for old in sorted(p for p in logs.iterdir() if p.is_dir())[:-KEEP_LOGS]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def write_rendered(plan: Plan, root: Path) -> dict[str, Path]:
    """Render the six files into `root` (ember's private work folder)."""
    paths = {}
    for rel, text in render_all(plan).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths[rel] = path
    return paths


# ------------------------------------------------------------------ preflight


def check_version(plan: Plan) -> None:
    """Refuse a required version that is unset or 0.0.0, before anything runs."""
    if plan.spec.project.version_missing:
        raise SpecError(
            "is unset or 0.0.0, and this profile requires a version "
            "(a 0.0.0 server gets HTTP 412 from the model registry on pulls)",
            file=plan.origin,
            key="project.version",
            hint='set it, e.g. version = "2.0.1"',
        )


def secrets_for(plan: Plan) -> dict[str, Path]:
    """BuildKit secrets for the build: the CA bundle, when the spec asks for one."""
    wanted = plan.spec.build.ca_bundle
    if wanted is None:
        return {}
    path = HOST_CA_BUNDLE if wanted == "host" else Path(wanted).expanduser()
    if not path.is_file():
        raise SpecError(
            f"CA bundle {path} does not exist",
            file=plan.origin,
            key="build.ca_bundle",
            hint='give a readable PEM file, or "host" for /etc/ssl/certs/ca-certificates.crt',
        )
    return {CA_SECRET_ID: path}


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_go_version(plan: Plan) -> None:
    """Refuse a local tree whose go.mod asks for a newer Go than the builder has."""
    go = plan.spec.toolchain.go
    if plan.source_dir is None or go is None or plan.spec.build.go is None:
        return
    try:
        gomod = (plan.source_dir / "go.mod").read_text(encoding="utf-8")
    except OSError:
        return
    match = re.search(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", gomod, re.MULTILINE)
    if match is None:
        return
    wanted, have = match.group(1), go.version
    # "1.23" in the spec means any 1.23.x: compare only as many parts as it gives.
    if _version_tuple(wanted)[: len(_version_tuple(have))] > _version_tuple(have):
        raise SpecError(
            f"is Go {have}, but {plan.source_dir / 'go.mod'} asks for go {wanted}",
            file=plan.origin,
            key="toolchain.go.version",
            hint=f"use a Go recipe of version >= {wanted} (e.g. the official archive with its sha256)",
        )


def ensure_base(engine: Engine, plan: Plan, options: BuildOptions, sink: EventSink) -> None:
    """Make sure the builder's base image exists, or say exactly how to make it."""
    tc = plan.spec.toolchain
    if engine.image_exists(tc.base):
        return
    boot = tc.bootstrap
    if boot is not None and options.bootstrap:
        from ember.base import bootstrap_base_image

        bootstrap_base_image(engine, tc.base, suite=boot.suite, mirror=boot.mirror, on_event=sink)
        return
    if boot is not None:
        command = f"ember base bootstrap {tc.base} --suite {boot.suite} --mirror {boot.mirror}"
        raise EngineError(
            f"the base image {tc.base} is not in the local image store, and this spec makes "
            "it offline rather than pulling it",
            hint=f"make it with `{command}`, or rerun with --bootstrap",
        )
    try:
        engine.pull(tc.base)
    except EngineError as exc:
        raise EngineError(
            f"the base image {tc.base} is not in the local image store and cannot be pulled "
            f"({proc.last_line(exc.log_tail) or exc.message})",
            command=exc.command,
            hint=f"`docker save {tc.base}` where a registry is reachable and `docker load` it "
            "here, or use a profile whose base ember makes offline (ollama37-debian)",
        ) from None


def resolve_commit(plan: Plan, ref: str | None) -> str:
    """The commit the build will use: a ref resolved with `git ls-remote`, or the local HEAD."""
    src = plan.spec.source
    if plan.source_kind == "local":
        assert plan.source_dir is not None
        result = proc.run(
            ["git", "-C", str(plan.source_dir), "rev-parse", "HEAD"],
            check=False,
            timeout=GIT_TIMEOUT,
        )
        return result.stdout.strip() if result.ok else "none"
    wanted = ref or src.ref
    if _SHA.match(wanted):
        return wanted
    assert src.git is not None
    try:
        result = proc.run(
            ["git", "ls-remote", "--", src.git, wanted],
            timeout=GIT_TIMEOUT,
            env={"GIT_TERMINAL_PROMPT": "0"},
        )
    except proc.CommandNotFound:
        raise EngineError(
            "git is not installed, and it is needed to resolve the source ref",
            hint="apt-get install git (or dnf install git)",
        ) from None
    except proc.CommandError as exc:
        raise EngineError(
            f"cannot resolve {wanted!r} in {src.git}: {proc.last_line(exc.output) or exc}",
            command=exc.argv,
            hint="check the URL and your network, or give a commit with --ref",
        ) from None
    refs: dict[str, str] = {}
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    # A peeled annotated tag names the commit itself; then branches, tags, exact names.
    for name in (f"refs/tags/{wanted}^{{}}", f"refs/heads/{wanted}", f"refs/tags/{wanted}", wanted):
        if name in refs:
            return refs[name]
    raise UsageError(
        f"{src.git} has no branch or tag {wanted!r}",
        hint="check [source] ref, or pass --ref with a branch, tag or commit",
    )


# ------------------------------------------------------------------ the builds


def _labels(plan: Plan, role: str) -> dict[str, str]:
    """OCI labels added at build time; the ember.* labels come from the rendered LABEL line."""
    spec = plan.spec
    labels = {
        "org.opencontainers.image.title": spec.project.name
        if role == "runtime"
        else spec.builder_name,
    }
    if spec.project.version:
        labels["org.opencontainers.image.version"] = spec.project.version
    if spec.source.git:
        labels["org.opencontainers.image.source"] = spec.source.git
    return labels


BUILDER_HASH_LABEL = "ember.builder-dockerfile-sha256"


@dataclass(frozen=True)
class Prepared:
    """What every build step needs, decided once before anything is built."""

    files: dict[str, Path]  # the rendered files, by relative path
    secrets: dict[str, Path]
    builder_hash: str  # sha256 of the rendered builder Dockerfile
    commit: str | None  # the source commit (runtime builds only)

    @property
    def builder_dockerfile(self) -> Path:
        return self.files[BUILDER_DOCKERFILE]


def prepare(plan: Plan, options: BuildOptions, *, runtime: bool) -> Prepared:
    """Every check that can fail before a long build: version, Go, CA bundle, source, commit."""
    check_version(plan)
    check_go_version(plan)
    secrets = secrets_for(plan)
    commit = None
    if runtime:
        if plan.source_dir is not None and not plan.source_dir.is_dir():
            raise UsageError(
                f"the source tree {plan.source_dir} does not exist",
                hint="check [source] path or --local",
            )
        commit = resolve_commit(plan, options.ref)
    files = write_rendered(plan, state_dir(plan.spec.project.name) / "rendered")
    return Prepared(files, secrets, builder_hash(plan), commit)


def builder_hash(plan: Plan) -> str:
    """sha256 of what the builder is made from: its rendered Dockerfile's instructions.

    Comments and LABEL lines are left out, so a new ember release (which stamps
    both) does not declare a good 90-minute builder stale.
    """
    lines = [
        line
        for line in render_builder(plan).splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "LABEL "))
    ]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def builder_state(engine: Engine, plan: Plan, builder_hash: str) -> str:
    """ "missing", "stale" (made from another builder Dockerfile) or "current"."""
    if not engine.image_exists(plan.builder_image):
        return "missing"
    labels = engine.inspect_image(plan.builder_image).labels
    return "current" if labels.get(BUILDER_HASH_LABEL) == builder_hash else "stale"


def _jobs(plan: Plan, options: BuildOptions) -> str:
    return str(options.jobs if options.jobs is not None else plan.spec.build.jobs)


def build_builder(
    engine: Engine,
    plan: Plan,
    prep: Prepared,
    options: BuildOptions,
    sink: EventSink,
    log_dir: Path,
) -> float:
    """Build the builder image (under a temporary tag, moved on success). Returns seconds."""
    request = BuildRequest(
        context_dir=prep.builder_dockerfile.parent,
        dockerfile=prep.builder_dockerfile,
        tags=(plan.builder_image,),
        build_args={"JOBS": _jobs(plan, options)},
        secrets=prep.secrets,
        network=_network(plan),
        # --no-cache rebuilds the ~90-minute builder only when it was asked for by name.
        no_cache=options.no_cache and options.rebuild_builder,
        labels={**_labels(plan, "builder"), BUILDER_HASH_LABEL: prep.builder_hash},
        platform=plan.spec.engine.platform,
        log_path=log_dir / "builder.raw.log",
        name=plan.builder_image,
    )
    return atomic_build(engine, request, on_event=sink).seconds


def build_runtime(
    engine: Engine,
    plan: Plan,
    prep: Prepared,
    options: BuildOptions,
    sink: EventSink,
    log_dir: Path,
) -> float:
    """Build the runtime image from git at the resolved commit, or from the local tree."""
    spec = plan.spec
    assert prep.commit is not None
    args = {
        "BUILDER_IMAGE": plan.builder_image,
        "GIT_COMMIT": prep.commit,
        spec.project.version_arg: spec.project.version,
        "JOBS": _jobs(plan, options),
    }
    dockerfile = prep.files[plan.runtime_dockerfile]
    if plan.source_kind == "git":
        assert spec.source.git is not None
        args["GIT_URL"] = spec.source.git
        context = dockerfile.parent
    else:
        assert plan.source_dir is not None
        context = plan.source_dir
    request = BuildRequest(
        context_dir=context,
        dockerfile=dockerfile,
        tags=(plan.runtime_image,),
        build_args=args,
        secrets=prep.secrets,
        network=_network(plan),
        no_cache=options.no_cache,
        labels={**_labels(plan, "runtime"), "org.opencontainers.image.revision": prep.commit},
        platform=spec.engine.platform,
        log_path=log_dir / "runtime.raw.log",
        name=plan.runtime_image,
    )
    return atomic_build(engine, request, on_event=sink).seconds


def _network(plan: Plan) -> str | None:
    network = plan.spec.engine.network
    return None if network == "default" else network


def run_build(
    engine: Engine,
    plan: Plan,
    *,
    builder: bool,
    runtime: bool,
    options: BuildOptions,
    sink: EventSink = null_sink,
    log_dir: Path,
) -> Outcome:
    """The `build`, `build-builder` and `build-runtime` verbs."""
    prep = prepare(plan, options, runtime=runtime)
    outcome = Outcome(commit=prep.commit)
    state = builder_state(engine, plan, prep.builder_hash)
    if options.rebuild_builder:
        need_builder = True
    elif state == "missing":
        need_builder = True
        if not builder:
            sink(Warn(f"{plan.builder_image} is missing: building it first"))
    elif state == "stale":
        need_builder = True
        sink(Warn(f"{plan.builder_image} was built from another toolchain: rebuilding it"))
    else:
        need_builder = False
    if need_builder:
        ensure_base(engine, plan, options, sink)
        seconds = build_builder(engine, plan, prep, options, sink, log_dir)
        outcome.built.append((plan.builder_image, seconds))
    else:
        outcome.reused.append(plan.builder_image)
    if runtime:
        outcome.built.append(
            (plan.runtime_image, build_runtime(engine, plan, prep, options, sink, log_dir))
        )
        outcome.gpu_report = _gpu_report_safely(engine, plan, prep.commit, sink)
    return outcome


def _gpu_report_safely(
    engine: Engine, plan: Plan, commit: str | None, sink: EventSink
) -> dict[str, Any] | None:
    """The GPU-code report, recorded for `plan`; a failure here never fails a good build."""
    try:
        image_id = engine.inspect_image(plan.runtime_image).id
        last = last_gpu_report(plan.spec.project.name)
        if last is not None and last.get("image_id") == image_id:
            report: dict[str, Any] | None = last.get("gpu")
            return report
        report = gpu_report(engine, plan)
        if report is not None:
            record = {
                "image": plan.runtime_image,
                "image_id": image_id,
                "commit": commit,
                "gpu": report,
            }
            path = state_dir(plan.spec.project.name) / "last-build.json"
            path.write_text(json.dumps(record, indent=2), encoding="utf-8")
        return report
    except (EmberError, OSError) as exc:
        sink(Warn(f"could not read the GPU code of {plan.runtime_image}: {exc}"))
        return None


# ------------------------------------------------------------------ GPU code


def gpu_report(engine: Engine, plan: Plan) -> dict[str, Any] | None:
    """Which target architectures got native code, read from the shipped artifacts.

    Returns None for a build without CUDA architectures.
    """
    archs = plan.target.cuda_architectures
    if not archs:
        return None
    from ember import fatbin

    targets = fatbin.parse_architectures(archs)
    files: dict[str, Any] = {}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ember-gpu-") as tmp:
        root = Path(tmp)
        for dst in plan.spec.build.artifacts.values():
            engine.copy_from_image(plan.runtime_image, dst, root / dst.lstrip("/"))
        for path in sorted(_elf_files(root)):
            try:
                code = fatbin.read_gpu_code_file(path)
            except EmberError:
                continue
            if code.is_empty:
                continue
            files["/" + str(path.relative_to(root))] = {
                **code.to_json(),
                "coverage": {f"sm_{t}": v for t, v in fatbin.coverage(code, targets).items()},
            }
    covered = {t for f in files.values() for t, v in f["coverage"].items() if v == "cubin"}
    return {
        "targets": [f"sm_{t}" for t in targets],
        "native": sorted(covered, key=lambda s: int(s[3:])),
        "missing": [f"sm_{t}" for t in targets if f"sm_{t}" not in covered],
        "files": files,
    }


def _elf_files(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    yield path


def last_gpu_report(project: str) -> dict[str, Any] | None:
    """The GPU-code report of the last runtime build, if there was one."""
    path = state_dir(project) / "last-build.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


# ------------------------------------------------------------------ clean


def clean(engine: Engine, plan: Plan) -> list[str]:
    """Remove exactly the images this spec produced (label ember.project), and stray temp tags."""
    from ember.engine.atomic import remove_temp_tags, repository_of

    removed: list[str] = []
    name = plan.spec.project.name
    for ref in (plan.runtime_image, plan.builder_image):
        if not engine.image_exists(ref):
            continue
        info = engine.inspect_image(ref)
        if info.labels.get("ember.project") != name:
            raise EngineError(
                f"{ref} was not made by ember for {name} (its ember.project label is "
                f"{info.labels.get('ember.project')!r}); leaving it alone",
                hint=f"remove it yourself: docker rmi {ref}",
            )
        engine.remove_image(ref)
        removed.append(ref)
    for ref in (plan.runtime_image, plan.builder_image):
        removed += remove_temp_tags(engine, repository_of(ref))
    return removed
