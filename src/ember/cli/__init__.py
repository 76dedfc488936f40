"""The command line: the only place that prints and exits.

Each verb group lives in its own module and is imported only when it runs,
so `ember --help` stays instant. `COMMANDS` maps a verb to
"module:attribute" of a click command and a one-line help text.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from ember import __version__
from ember.errors import EXIT_INTERRUPTED, EmberError

# verb -> (module path, attribute, short help). Kept in the order `--help` shows.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("ember.cli.spec_cmds", "init", "Write an annotated ember.toml from a profile."),
    "profiles": ("ember.cli.spec_cmds", "profiles", "List the profiles shipped with ember."),
    "schema": ("ember.cli.spec_cmds", "schema", "Print the spec's JSON Schema."),
    "plan": ("ember.cli.plan_cmds", "plan", "Say what would be built, and why."),
    "render": ("ember.cli.plan_cmds", "render", "Write Dockerfiles, compose file and README."),
    "resolve": ("ember.cli.compat_cmds", "resolve", "Choose a toolchain for GPUs and a driver."),
    "gpus": ("ember.cli.compat_cmds", "gpus", "List known GPUs and what supports them."),
    "build": (
        "ember.cli.build_cmds",
        "build",
        "Build the builder (only when missing), then the runtime.",
    ),
    "build-builder": (
        "ember.cli.build_cmds",
        "build_builder",
        "Build the builder image (the toolchain).",
    ),
    "build-runtime": (
        "ember.cli.build_cmds",
        "build_runtime",
        "Build the runtime image (the builder first if missing).",
    ),
    "clean": ("ember.cli.build_cmds", "clean", "Remove exactly the images this spec produced."),
    "up": (
        "ember.cli.compose_cmds",
        "up",
        "Start the server (docker compose) and wait until healthy.",
    ),
    "down": ("ember.cli.compose_cmds", "down", "Stop and remove the server's containers."),
    "logs": ("ember.cli.compose_cmds", "logs", "Print the server's log."),
    "ps": ("ember.cli.compose_cmds", "ps", "Show the server's containers and their health."),
    "restart": ("ember.cli.compose_cmds", "restart", "Restart the server and wait until healthy."),
    "base": ("ember.cli.base_cmds", "base", "Make base images offline (debootstrap + import)."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, _ = entry
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the verb; turn ember's errors into one line and an exit code.

        Tracebacks appear only with --debug. Click's own usage errors (exit 2)
        pass through untouched.
        """
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`ember gpus | head`): stop quietly, like other CLI tools.
            import os
            import sys

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(1)
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            click.echo("ember: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except EmberError as exc:
            if _debug(ctx):
                raise
            click.echo(f"ember: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # a folder ember writes to (state, --out) is not writable
            if _debug(ctx):
                raise
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"ember: error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)
        except Exception as exc:  # the last line of defence: still one line
            if _debug(ctx):
                raise
            click.echo(
                f"ember: internal error: {type(exc).__name__}: {exc} "
                "(rerun with --debug for the traceback, and please report it)",
                err=True,
            )
            ctx.exit(1)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the short help from the table so --help imports nothing else.
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _debug(ctx: click.Context) -> bool:
    obj = ctx.obj
    return bool(getattr(obj, "debug", False))


class Context:
    """What the top-level options give every verb."""

    def __init__(self, spec_path: str | None, profile: str | None, debug: bool) -> None:
        self.spec_path = spec_path
        self.profile = profile
        self.debug = debug

    def load_spec(self) -> Any:
        """The spec chosen by --spec/--profile, else ./ember.toml, else the default profile."""
        from ember.spec import load_selected

        return load_selected(self.spec_path, self.profile)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--spec",
    "spec_path",
    metavar="FILE",
    help="Build spec to use (default: ./ember.toml, else the ollama37 profile).",
)
@click.option("--profile", metavar="NAME", help="Use a shipped profile instead of a spec file.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="ember")
@click.pass_context
def cli(ctx: click.Context, spec_path: str | None, profile: str | None, debug: bool) -> None:
    """Build, verify and run GPU software for legacy NVIDIA GPUs (Tesla K80 and friends)."""
    if spec_path and profile:
        raise click.UsageError("give either --spec or --profile, not both")
    ctx.obj = Context(spec_path, profile, debug)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `ember` command."""
    cli.main(args=argv, prog_name="ember")
