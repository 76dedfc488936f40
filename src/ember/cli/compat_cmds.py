"""`ember resolve` and `ember gpus`: thin commands over `ember.compat`.

Library errors (`ResolveError`) are left to the CLI boundary in
`ember.cli`, which prints one line and exits 2; with `--json`, `resolve`
prints the refusal as a JSON object `{"error": ...}` on stdout and still exits 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ember.errors import EXIT_USAGE, ResolveError


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)


@click.command()
@click.option(
    "--gpu",
    "gpus",
    multiple=True,
    required=True,
    metavar="NAME|CC",
    help='Target GPU: a name ("Tesla K80", "K80") or a compute capability ("3.7"). Repeatable.',
)
@click.option(
    "--driver", metavar="VERSION", help="Host driver as nvidia-smi prints it (470.256.02)."
)
@click.option("--cuda", metavar="X.Y[.Z]", help="Pin the CUDA toolkit.")
@click.option("--gcc", type=int, metavar="N", help="Pin the GCC major version.")
@click.option(
    "--arch-mode",
    type=click.Choice(["real", "virtual", "both"]),
    default="real",
    show_default=True,
    help="real: cubins only; virtual: PTX only (JIT at start); both: cubins and PTX.",
)
@click.option(
    "--cuda-architectures",
    metavar="LIST",
    help="An explicit CMAKE_CUDA_ARCHITECTURES list to check (37-real;86-real); overrides --arch-mode.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def resolve(
    ctx: click.Context,
    gpus: tuple[str, ...],
    driver: str | None,
    cuda: str | None,
    gcc: int | None,
    arch_mode: str,
    cuda_architectures: str | None,
    as_json: bool,
) -> None:
    """Choose a CUDA toolkit, GCC and CMAKE_CUDA_ARCHITECTURES for GPUs and a driver.

    Exits 2 with the rule and a fix when the combination cannot work.
    """
    from ember.compat import Request
    from ember.compat import resolve as do_resolve

    request = Request(
        gpus=gpus,
        driver=driver,
        cuda=cuda,
        gcc=gcc,
        arch_mode=arch_mode,
        cuda_architectures=cuda_architectures,
    )
    if not as_json:
        decision = do_resolve(request)
        _print_decision(decision)
        return
    try:
        decision = do_resolve(request)
    except ResolveError as exc:
        error: dict[str, Any] = {"error": str(exc), "rule": getattr(exc, "rule", None)}
        click.echo(_dump(error))
        click.echo(f"ember: error: {exc}", err=True)
        ctx.exit(EXIT_USAGE)
    click.echo(_dump(decision.to_json()))


def _print_decision(decision: Any) -> None:
    lines = [
        f"CUDA {decision.cuda}, GCC {decision.gcc}, "
        f"CMAKE_CUDA_ARCHITECTURES={decision.cuda_architectures}",
        f"minimum driver {decision.min_driver} (native: {decision.native_driver})"
        + (
            f", newest usable driver branch {decision.max_driver_branch}"
            if decision.max_driver_branch
            else ""
        ),
        "GPUs: " + ", ".join(f"{g.label} (sm_{g.sm}, {g.architecture})" for g in decision.gpus),
        "",
        "why:",
        *[f"  - {r}" for r in decision.reasons],
    ]
    if decision.warnings:
        lines += ["", "warnings:", *[f"  - {w}" for w in decision.warnings]]
    click.echo("\n".join(lines))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def gpus(as_json: bool) -> None:
    """List known GPUs with compute capability, architecture, last toolkit and driver branch."""
    from ember.compat import known_gpus

    found = known_gpus()
    if as_json:
        click.echo(_dump([g.to_json() for g in found]))
        return
    head = ("GPU", "CC", "architecture", "segment", "last toolkit", "last driver")
    rows = [
        (
            g.name,
            g.compute_capability,
            g.architecture,
            g.segment,
            g.last_toolkit
            if g.last_toolkit in ("current", g.newest_toolkit)
            else f"{g.last_toolkit} ({g.newest_toolkit})",
            g.last_driver_branch,
        )
        for g in found
    ]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*head)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    # Not a terminal: plain, deterministic columns.
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    for row in (head, *rows):
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
