"""The container engine: one interface (`Engine`), one implementation (`DockerEngine`).

This package is the only place that talks to a container engine; it runs
every command through `ember.proc`.
"""

from __future__ import annotations

from typing import Any

from ember.engine.atomic import atomic_build, remove_temp_tags
from ember.engine.interface import (
    BuildRequest,
    BuildResult,
    ComposeResult,
    Engine,
    EngineInfo,
    ImageInfo,
    ImageNotFound,
    ServiceState,
)

__all__ = [
    "BuildRequest",
    "BuildResult",
    "ComposeResult",
    "DockerEngine",
    "Engine",
    "EngineInfo",
    "ImageInfo",
    "ImageNotFound",
    "ServiceState",
    "atomic_build",
    "default_engine",
    "remove_temp_tags",
]


def default_engine(**overrides: Any) -> Engine:
    """The engine the environment names (DOCKER_HOST, DOCKER_CONTEXT, EMBER_DOCKER, EMBER_BUILDER)."""
    from ember.engine.docker import DockerEngine

    return DockerEngine.from_env(**overrides)


def __getattr__(name: str) -> Any:
    if name == "DockerEngine":  # imported lazily: python-on-whales loads pydantic models
        from ember.engine.docker import DockerEngine

        return DockerEngine
    raise AttributeError(name)
