"""The Makefile's verbs: `build`, `build-builder`, `build-runtime`, `clean`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

_common = [
    click.option("--no-cache", is_flag=True, help="Build without the engine's cache."),
    click.option(
        "--bootstrap", is_flag=True, help="Make a missing base image offline (debootstrap)."
    ),
    click.option(
        "--jobs",
        "-j",
        type=click.IntRange(0, 1024),
        default=None,
        help="Parallel compile jobs (0 = all cores).",
    ),
]
_runtime_opts = [
    click.option(
        "--local",
        "local",
        metavar="PATH",
        default=None,
        help="Build the runtime from this local tree.",
    ),
    click.option(
        "--ref",
        metavar="REF",
        default=None,
        help="Git branch, tag or commit (default: [source] ref).",
    ),
]


F = TypeVar("F", bound=Callable[..., Any])


def _apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def deco(f: F) -> F:
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco


def _run(obj: Any, *, builder: bool, runtime: bool, local: str | None = None, **kw: Any) -> None:
    from ember.build import BuildOptions, new_log_dir, run_build
    from ember.engine.docker import DockerEngine
    from ember.errors import BuildFailed
    from ember.events import LogFolder, choose_sink, fan_out
    from ember.plan import make_plan

    plan = make_plan(obj.load_spec(), local=local)
    engine = DockerEngine.from_env(builder=kw.get("buildx_builder") or plan.spec.engine.builder)
    engine.info()  # a missing engine is one clear error before anything else
    options = BuildOptions(
        no_cache=kw.get("no_cache", False),
        ref=kw.get("ref"),
        bootstrap=kw.get("bootstrap", False),
        jobs=kw.get("jobs"),
        rebuild_builder=kw.get("rebuild_builder", False),
    )
    log_dir = new_log_dir(plan.spec.project.name)
    display, live = choose_sink(sys.stderr)
    with LogFolder(log_dir) as log, live:
        sink = fan_out(display, log)
        try:
            outcome = run_build(
                engine,
                plan,
                builder=builder,
                runtime=runtime,
                options=options,
                sink=sink,
                log_dir=log_dir,
            )
        except BuildFailed as exc:
            # The failing step's last lines, then (from the CLI boundary) the one-line error,
            # whose hint names the full log.
            for line in exc.log_tail.splitlines()[-15:]:
                click.echo(f"  | {line}", err=True)
            raise
    for image in outcome.reused:
        click.echo(f"reused {image}")
    for image, seconds in outcome.built:
        size = engine.inspect_image(image).size
        click.echo(f"built {image} in {seconds:.1f} s ({size / 1e9:.2f} GB)")
    if outcome.commit:
        click.echo(f"source commit: {outcome.commit}")
    report = outcome.gpu_report
    if report is not None:
        click.echo(f"GPU code: native cubins for {', '.join(report['native']) or 'none'}")
        if report["missing"]:
            click.echo(f"warning: no native code for {', '.join(report['missing'])}", err=True)
    click.echo(f"log: {log_dir}")


@click.command()
@_apply(_common + _runtime_opts)
@click.pass_obj
def build(obj: Any, /, **kw: Any) -> None:
    """Build the builder (only when missing), then the runtime."""
    _run(obj, builder=True, runtime=True, **kw)


@click.command("build-builder")
@_apply(_common)
@click.pass_obj
def build_builder(obj: Any, /, **kw: Any) -> None:
    """Build the builder image (the toolchain)."""
    _run(obj, builder=True, runtime=False, **{**kw, "rebuild_builder": True})


@click.command("build-runtime")
@_apply(_common + _runtime_opts)
@click.pass_obj
def build_runtime(obj: Any, /, **kw: Any) -> None:
    """Build the runtime image (the builder first, if it is missing)."""
    _run(obj, builder=False, runtime=True, **kw)


@click.command()
@click.pass_obj
def clean(obj: Any) -> None:
    """Remove exactly the images this spec produced."""
    from ember.build import clean as clean_images
    from ember.engine.docker import DockerEngine
    from ember.plan import make_plan

    plan = make_plan(obj.load_spec())
    removed = clean_images(DockerEngine.from_env(builder=plan.spec.engine.builder), plan)
    for ref in removed:
        click.echo(f"removed {ref}")
    if not removed:
        click.echo("nothing to remove")
