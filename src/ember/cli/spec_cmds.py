"""`ember init`, `ember profiles`, `ember schema`: the spec and the shipped profiles."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ember.errors import UsageError


@click.command()
@click.option(
    "--profile",
    "profile_name",
    default=None,
    metavar="NAME",
    help="Profile to start from (default: ollama37).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option(
    "--out", "out", default="ember.toml", show_default=True, metavar="FILE", help="Where to write."
)
@click.pass_obj
def init(obj: object, profile_name: str | None, force: bool, out: str) -> None:
    """Write an annotated ember.toml from a profile, to edit."""
    from ember import profiles
    from ember.spec import DEFAULT_PROFILE

    name = profile_name or getattr(obj, "profile", None) or DEFAULT_PROFILE
    text = profiles.text(name)
    path = Path(out)
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="use --force to overwrite it")
    path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {path} from profile {name}; edit it, then run `ember plan`")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def profiles(as_json: bool) -> None:
    """List the profiles shipped with ember."""
    from ember import profiles as shipped

    rows = [(name, shipped.summary(name)) for name in shipped.names()]
    if as_json:
        click.echo(json.dumps([{"name": n, "summary": s} for n, s in rows], indent=2))
        return
    width = max(len(n) for n, _ in rows)
    for name, summary in rows:
        click.echo(f"{name:<{width}}  {summary.split(': ', 1)[-1]}")


@click.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editors: Taplo, Even Better TOML)."""
    from ember.spec.model import Spec

    doc = Spec.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "ember.toml"
    click.echo(json.dumps(doc, indent=2, sort_keys=True))
