"""Turning TOML text into a validated `Spec`, with errors a person can act on.

Every failure becomes one `SpecError` that names the file, the key path and
what is allowed; an unknown key also names the closest valid one.
"""

from __future__ import annotations

import difflib
import re
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ember.errors import SpecError
from ember.spec.model import Spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_SPEC_FILE = "ember.toml"
MAX_SPEC_BYTES = 1 << 20


def parse_toml(data: bytes | str, file: str) -> dict[str, Any]:
    """Parse TOML, turning encoding and syntax problems into `SpecError`."""
    if isinstance(data, bytes):
        if len(data) > MAX_SPEC_BYTES:
            raise SpecError(
                f"is larger than {MAX_SPEC_BYTES} bytes; a spec is a small text file", file=file
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                f"is not UTF-8 text (byte {exc.start}); a spec must be a TOML text file", file=file
            ) from None
    else:
        text = data
    if "\x00" in text:
        raise SpecError("contains NUL bytes; a spec must be a TOML text file", file=file)
    try:
        parsed: dict[str, Any] = tomllib.loads(text)
        return parsed
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"invalid TOML: {exc}", file=file) from None


def _model_for(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that holds the value at `loc` (for suggesting key names)."""
    model: type[BaseModel] = Spec
    for part in loc:
        if not isinstance(part, str) or part not in model.model_fields:
            return model if part == loc[-1] else None
        annotation = model.model_fields[part].annotation
        nested = _first_model(annotation)
        if nested is None:
            return None
        model = nested
    return model


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


_UNION_TAG = re.compile(r"^(?:constrained-str|str|int|bool|float|none|[a-z-]+\[.*\])$")


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The key path of an error, without pydantic's union-branch tags."""
    out: list[int | str] = []
    model: type[BaseModel] | None = Spec
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out.append(part)
            model = None
        elif model is not None and part in model.model_fields:
            out.append(part)
            model = _first_model(model.model_fields[part].annotation)
        elif model is not None and i == len(loc) - 1:
            out.append(part)  # an unknown key
        elif _UNION_TAG.match(part):
            continue
        else:
            out.append(part)  # a key of a table such as [runtime.env]
    return tuple(out)


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def _message(error: Mapping[str, Any]) -> tuple[str, str | None]:
    """A short message and a hint for one pydantic error."""
    loc = _clean_loc(tuple(error["loc"]))
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_for(loc[:-1]) if len(loc) > 1 else Spec
        allowed = sorted(model.model_fields) if model else []
        name = str(loc[-1])
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`?" if close else None
        return f"unknown key; allowed here: {', '.join(allowed)}", hint
    if kind == "missing":
        return "is required but missing", None
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "string_pattern_mismatch":
        msg = f"has an invalid value {error.get('input')!r}"
        hint = _PATTERN_HINTS.get(str(loc[-1]) if loc else "")
        return msg, hint
    return msg, None


_PATTERN_HINTS = {
    "name": "use lowercase letters, digits and single '.', '_' or '-' (no '/', no '..')",
    "version": "use a release number such as 2.0.1",
    "sha256": "64 lowercase hex digits",
    "driver": "an NVIDIA driver version such as 470.256.02",
    "base": "an image reference such as rockylinux:8 or registry:5000/debian:bookworm",
    "cuda_architectures": 'CMake form, e.g. "37-real;86-real"',
}


def validate(data: dict[str, Any], file: str) -> Spec:
    """Validate parsed TOML against the spec model."""
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        message, hint = _message(first)
        locs = {_clean_loc(tuple(err["loc"])) for err in errors}
        more = len(locs) - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        key = _key_path(_clean_loc(tuple(first["loc"])))
        raise SpecError(message, file=file, key=key, hint=hint) from None


def load_text(data: bytes | str, file: str) -> Spec:
    """Parse and validate a spec given as text."""
    return validate(parse_toml(data, file), file)


def load_file(path: Path) -> Spec:
    """Read, parse and validate a spec file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(
            "no such file", file=str(path), hint="run `ember init` to write one from a profile"
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot be read: {exc.strerror}", file=str(path)) from None
    return load_text(data, str(path))
