"""Running the runtime image through docker compose: `up`, `down`, `logs`, `ps`, `restart`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ember.render.compose import publish_host


def _project(obj: Any, *, no_gpu: bool | None) -> tuple[Any, Any, Path, Path]:
    """(engine, plan, project dir, compose file).

    `up` (no_gpu given) writes the compose file afresh, with or without the GPU
    reservation; the other verbs reuse the file `up` wrote, so they address the
    same project.
    """
    from ember.build import state_dir
    from ember.engine.docker import DockerEngine
    from ember.plan import make_plan
    from ember.render.compose import render_compose

    plan = make_plan(obj.load_spec())
    folder = state_dir(plan.spec.project.name) / "compose"
    folder.mkdir(parents=True, exist_ok=True)
    compose_file = folder / "docker-compose.yml"
    if no_gpu is not None or not compose_file.exists():
        use_gpu = plan.spec.compose.gpu and not no_gpu
        compose_file.write_text(render_compose(plan, gpu=use_gpu), encoding="utf-8")
    engine = DockerEngine.from_env(builder=plan.spec.engine.builder)
    return engine, plan, folder, compose_file


def _print_services(services: Any) -> None:
    for s in services:
        health = f" ({s.health})" if s.health else ""
        click.echo(f"{s.service}: {s.state}{health}  [{s.name}]")


@click.command()
@click.option(
    "--no-gpu", is_flag=True, help="Drop the GPU reservation (hosts without the NVIDIA runtime)."
)
@click.pass_obj
def up(obj: Any, no_gpu: bool) -> None:
    """Start the server with docker compose and wait until it is healthy."""
    engine, plan, folder, compose_file = _project(obj, no_gpu=no_gpu)
    from ember.errors import EmberError

    if not engine.image_exists(plan.runtime_image):
        raise EmberError(f"{plan.runtime_image} does not exist yet", hint="run `ember build` first")
    if plan.spec.compose.gpu and not no_gpu:
        missing = [dev for dev in plan.spec.compose.devices if not Path(dev).exists()]
        if missing:
            raise EmberError(
                f"{', '.join(missing)} missing on this host, and the compose service maps "
                "them (without them CUDA sees 0 GPUs)",
                hint="create them with `nvidia-modprobe -u -c=0`, or run `ember up --no-gpu` "
                "on a host without NVIDIA GPUs",
            )
    result = engine.compose(folder, compose_file, plan.spec.project.name, "up")
    _print_services(result.services)
    spec = plan.spec
    for port in spec.runtime.ports:
        host = spec.compose.publish_address
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else publish_host(host)
        click.echo(f"listening on http://{shown}:{port}/ (published on {host})")


@click.command()
@click.pass_obj
def down(obj: Any) -> None:
    """Stop and remove the server's containers (the data volume stays)."""
    engine, plan, folder, compose_file = _project(obj, no_gpu=None)
    engine.compose(folder, compose_file, plan.spec.project.name, "down")
    click.echo(f"stopped {plan.spec.service_name}")


@click.command()
@click.option(
    "--tail", "tail", default="200", show_default=True, help="Lines from the end (or 'all')."
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@click.pass_obj
def logs(obj: Any, tail: str, follow: bool) -> None:
    """Print the server's log."""
    engine, plan, folder, compose_file = _project(obj, no_gpu=None)
    if follow:
        engine.compose_follow(
            folder,
            compose_file,
            plan.spec.project.name,
            lambda _stream, line: click.echo(line),
            tail,
        )
        return
    result = engine.compose(folder, compose_file, plan.spec.project.name, "logs", ["--tail", tail])
    click.echo(result.output, nl=False)


@click.command()
@click.pass_obj
def ps(obj: Any) -> None:
    """Show the server's containers and their health."""
    engine, plan, folder, compose_file = _project(obj, no_gpu=None)
    result = engine.compose(folder, compose_file, plan.spec.project.name, "ps")
    if not result.services:
        click.echo("not running")
    _print_services(result.services)


@click.command()
@click.pass_obj
def restart(obj: Any) -> None:
    """Restart the server and wait until it is healthy."""
    engine, plan, folder, compose_file = _project(obj, no_gpu=None)
    result = engine.compose(folder, compose_file, plan.spec.project.name, "restart")
    _print_services(result.services)
