"""`ember base ...`: base images made offline (debootstrap + docker import)."""

from __future__ import annotations

import sys

import click


@click.group(name="base")
def base() -> None:
    """Make base images offline (debootstrap + import), for machines without a registry."""


@base.command("bootstrap")
@click.argument("ref", metavar="NAME:TAG")
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite to bootstrap.")
@click.option(
    "--mirror",
    default="http://deb.debian.org/debian",
    show_default=True,
    metavar="URL",
    help="Debian mirror to fetch from.",
)
@click.option("--force", is_flag=True, help="Make it again even if NAME:TAG exists.")
@click.option("--verbose", "-v", is_flag=True, help="Show debootstrap's output.")
def bootstrap(ref: str, suite: str, mirror: str, force: bool, verbose: bool) -> None:
    """Debootstrap a minimal Debian SUITE and import it as NAME:TAG (needs root)."""
    from ember.base import bootstrap_base_image
    from ember.engine import default_engine
    from ember.events import PlainPrinter

    if ":" not in ref.rsplit("/", 1)[-1]:
        raise click.BadParameter("give NAME:TAG, e.g. ember/debian:bookworm", param_hint="NAME:TAG")
    printer = PlainPrinter(sys.stderr, show_logs=verbose)
    result = bootstrap_base_image(
        default_engine(), ref, suite=suite, mirror=mirror, force=force, on_event=printer
    )
    size_mb = result.image.size / 1e6
    if result.created:
        click.echo(
            f"{ref}: made from Debian {suite} in {result.seconds:.0f}s ({size_mb:.0f} MB, {result.image.id[:19]})"
        )
    else:
        click.echo(
            f"{ref}: already there ({size_mb:.0f} MB, {result.image.id[:19]}); --force makes it again"
        )
