"""Atomic tags: a name moves to a new image only when its build succeeded.

`atomic_build` builds under a temporary tag (`NAME:ember-tmp-<random>`),
moves the real tags onto the result only on success, and removes the
temporary tag on success, failure and Ctrl-C alike. A failed or interrupted
build therefore leaves the previous image under its name and no temporary
tags behind. (A process killed with SIGKILL cannot clean up:
`remove_temp_tags` sweeps what such a process left.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import secrets
from collections.abc import Sequence

from ember import proc
from ember.engine.interface import BuildRequest, BuildResult, Engine
from ember.events import EventSink, Tagged, null_sink

TEMP_TAG_PREFIX = "ember-tmp-"


def repository_of(ref: str) -> str:
    """`registry:5000/a/b:tag@sha256:..` -> `registry:5000/a/b` (the name without tag or digest)."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def temp_tag(final_tag: str) -> str:
    return f"{repository_of(final_tag)}:{TEMP_TAG_PREFIX}{secrets.token_hex(6)}"


def is_temp_tag(ref: str) -> bool:
    return fnmatch.fnmatchcase(ref, f"*:{TEMP_TAG_PREFIX}*")


def atomic_build(
    engine: Engine,
    request: BuildRequest,
    final_tags: Sequence[str] | None = None,
    on_event: EventSink | None = None,
) -> BuildResult:
    """Build `request`, then point `final_tags` (default: request.tags) at the result.

    Each tag moves in one engine call, after the whole build succeeded; the
    temporary tag is gone when this returns or raises (BuildFailed,
    KeyboardInterrupt, anything).
    """
    final = tuple(final_tags if final_tags is not None else request.tags)
    if not final:
        raise ValueError("atomic_build needs at least one final tag")
    sink = on_event or null_sink
    tmp = temp_tag(final[0])
    observe = getattr(engine, "observed", None)
    watching = observe(sink) if callable(observe) else contextlib.nullcontext()
    with watching:
        try:
            named = dataclasses.replace(request, tags=(tmp,), name=request.name or final[0])
            result = engine.build(named, sink)
            for tag in final:
                engine.tag(tmp, tag)
                sink(Tagged(result.image_id, tag))
        finally:
            with proc.sigint_deferred():  # a second Ctrl-C must not leave the temp tag
                engine.remove_image(tmp, missing_ok=True)
    return dataclasses.replace(result, tags=final)


def remove_temp_tags(engine: Engine, repository: str | None = None) -> list[str]:
    """Remove every `*:ember-tmp-*` tag (of `repository`, if given). Returns what it removed.

    Without `repository` this sweeps the whole engine, including the temporary
    tag of a build that is finishing right now: prefer naming the repository.
    """
    removed = []
    pattern = f"{repository}:{TEMP_TAG_PREFIX}*" if repository else None
    for image in engine.list_images(pattern):
        for tag in image.tags:
            if is_temp_tag(tag) and (repository is None or repository_of(tag) == repository):
                engine.remove_image(tag, missing_ok=True)
                removed.append(tag)
    return removed
