"""The build spec: its models, loading and the choice between file and profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ember.spec.load import DEFAULT_SPEC_FILE, load_file, load_text
from ember.spec.model import Spec

__all__ = ["DEFAULT_SPEC_FILE", "Loaded", "Spec", "load_file", "load_selected", "load_text"]

DEFAULT_PROFILE = "ollama37"


@dataclass(frozen=True)
class Loaded:
    """A validated spec and where it came from (relative paths resolve against `base_dir`)."""

    spec: Spec
    origin: str
    base_dir: Path
    profile: str | None


def load_selected(spec_path: str | None, profile: str | None, cwd: Path | None = None) -> Loaded:
    """The spec named by --spec or --profile; else ./ember.toml; else the default profile."""
    from ember import profiles

    here = cwd or Path.cwd()
    if profile:
        return Loaded(profiles.load(profile), f"profile {profile}", here, profile)
    path = Path(spec_path) if spec_path else here / DEFAULT_SPEC_FILE
    if spec_path or path.exists():
        return Loaded(load_file(path), str(path), path.resolve().parent, None)
    return Loaded(
        profiles.load(DEFAULT_PROFILE), f"profile {DEFAULT_PROFILE}", here, DEFAULT_PROFILE
    )
