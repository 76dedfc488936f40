"""`ember plan` and `ember render`: what would be built, and the files that build it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

_TOOL_NAMES = {"cuda": "CUDA", "gcc": "GCC", "cmake": "CMake", "go": "Go"}


def _plan(obj: Any, local: str | None = None, *, ask_engine: bool = False) -> Any:
    import dataclasses

    from ember.plan import make_plan

    plan = make_plan(obj.load_spec(), local=local)
    if ask_engine:
        plan = dataclasses.replace(plan, builder_state=_builder_state(plan))
    return plan


def _builder_state(plan: Any) -> str | None:
    """The builder's state in the engine; None when no engine answers (plan needs none)."""
    from ember.build import builder_hash, builder_state
    from ember.engine.docker import DockerEngine
    from ember.errors import EmberError

    try:
        return builder_state(DockerEngine.from_env(), plan, builder_hash(plan))
    except EmberError:
        return None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--local", metavar="PATH", default=None, help="Plan a build of this local tree.")
@click.pass_obj
def plan(obj: Any, as_json: bool, local: str | None) -> None:
    """Say what would be built, and why."""
    from ember.build import last_gpu_report

    p = _plan(obj, local, ask_engine=True)
    data = p.to_json()
    last = last_gpu_report(p.spec.project.name)
    data["last_build"] = last
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    tc = data["toolchain"]
    click.echo(f"spec: {p.origin}")
    click.echo(f"builder: {p.builder_image} FROM {p.spec.toolchain.base}")
    click.echo("  toolchain: " + ", ".join(f"{_TOOL_NAMES[k]} {v}" for k, v in tc.items() if v))
    click.echo(f"runtime: {p.runtime_image} FROM {data['runtime']['base']}")
    target = p.target
    click.echo(f"target: {', '.join(target.gpus) or 'CPU only'}")
    if target.cuda_architectures:
        click.echo(f"  CUDA architectures: {target.cuda_architectures}")
    if target.min_driver:
        click.echo(f"  minimum driver: {target.min_driver}")
    for reason in target.reasons:
        click.echo(f"  because: {reason}")
    for warning in target.warnings:
        click.echo(f"  warning: {warning}")
    click.echo("would:")
    for step in p.actions():
        click.echo(f"  - {step}")
    for note in p.notes:
        click.echo(f"note: {note}")
    if last and last.get("gpu"):
        gpu = last["gpu"]
        native = ", ".join(gpu["native"]) or "none"
        click.echo(
            f"last build: {last['image']} at {str(last.get('commit'))[:12]}: native cubins for {native}"
        )
        if gpu["missing"]:
            click.echo(f"  no native code for: {', '.join(gpu['missing'])}")


@click.command()
@click.option("--out", "out", required=True, metavar="DIR", help="Folder to write the files into.")
@click.pass_obj
def render(obj: Any, out: str) -> None:
    """Write builder/runtime Dockerfiles, docker-compose.yml, .env.example and README.md."""
    from ember.build import write_rendered

    files = write_rendered(_plan(obj), Path(out))
    for path in files.values():
        click.echo(str(path))
