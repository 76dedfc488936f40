"""Profiles: annotated spec files shipped inside the package (data, not code)."""

from __future__ import annotations

import difflib
import functools
from importlib import resources

from ember.errors import SpecError
from ember.spec.load import load_text
from ember.spec.model import Spec


def names() -> list[str]:
    """The shipped profile names, sorted."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in resources.files(__package__).iterdir()
        if entry.name.endswith(".toml")
    )


def text(name: str) -> str:
    """The annotated TOML text of a profile (what `ember init` writes)."""
    if name not in names():
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f"did you mean `{close[0]}`?" if close else "see `ember profiles`"
        raise SpecError(f"unknown profile `{name}`; known: {', '.join(names())}", hint=hint)
    return resources.files(__package__).joinpath(f"{name}.toml").read_text(encoding="utf-8")


@functools.cache
def load(name: str) -> Spec:
    """The validated spec of a profile."""
    return load_text(text(name), f"profile {name}")


def summary(name: str) -> str:
    """The first comment line of a profile: what it is for."""
    for line in text(name).splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
