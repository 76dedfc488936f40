"""Rendering: the plan turned into the seed's folder of files. Pure: text in, text out.

`render_all(plan)` returns {relative path: text} for the six files
(builder/Dockerfile, runtime/Dockerfile, runtime/Dockerfile.local,
docker-compose.yml, .env.example, README.md). Writing them is the CLI's job.
"""

from __future__ import annotations

import functools
import shlex
from typing import Any

from ember import __version__
from ember.plan import BUILDER_DOCKERFILE, GIT_DOCKERFILE, LOCAL_DOCKERFILE, Plan
from ember.spec.model import Spec, Tool

CA_SECRET_ID = "cacert"
CA_SECRET_PATH = f"/run/secrets/{CA_SECRET_ID}"
# Tools that fetch over HTTPS read these; set only inside the RUN step that fetches.
CA_ENV_VARS = (
    "SSL_CERT_FILE",
    "PIP_CERT",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "REQUESTS_CA_BUNDLE",
)

COMPOSE_FILE = "docker-compose.yml"
ENV_FILE = ".env.example"
README_FILE = "README.md"


@functools.cache
def _env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ember.render", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Dockerfiles and Markdown, not HTML
    )
    env.filters["q"] = shlex.quote
    env.filters["json"] = _json_list
    env.filters["dq"] = _double_quote
    return env


def _json_list(items: list[str]) -> str:
    import json

    return json.dumps(list(items))


def _double_quote(value: str) -> str:
    """A Dockerfile ENV/LABEL value in double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ca_prelude() -> str:
    """Shell that points fetching tools at the CA secret when it was passed."""
    exports = " ".join(f"{name}={CA_SECRET_PATH}" for name in CA_ENV_VARS)
    return f"if [ -f {CA_SECRET_PATH} ]; then export {exports}; fi"


def _tools(spec: Spec) -> list[tuple[str, Tool]]:
    order = ("cuda", "gcc", "cmake", "go")
    tools = [(name, getattr(spec.toolchain, name)) for name in order]
    return [(name, tool) for name, tool in tools if tool is not None and tool.recipe != "none"]


def _base_packages(spec: Spec) -> list[str]:
    """Distribution packages the builder needs: the spec's, plus what recipes need."""
    packages = list(spec.toolchain.packages)
    recipes = {tool.recipe for _, tool in _tools(spec)}
    needs = []
    if recipes & {"archive", "source"}:
        needs += [
            "curl",
            "ca-certificates",
            "tar",
            "xz-utils" if spec.toolchain.family == "debian" else "xz",
        ]
    if "pip" in recipes and spec.toolchain.family == "rhel":
        needs += ["python3"]
    for pkg in needs:
        if pkg not in packages and not (pkg == "curl" and spec.toolchain.family == "rhel"):
            packages.append(pkg)
    return packages


def _gcc_command(spec: Spec) -> str:
    return spec.toolchain.env.get("CC", "gcc")


def _checks(spec: Spec) -> list[tuple[str, str, str]]:
    """(tool, command printing its version, expected text) for the builder's self-check."""
    checks = [
        ("GCC", f"{shlex.quote(_gcc_command(spec))} -dumpfullversion", spec.toolchain.gcc.version)
    ]
    tc = spec.toolchain
    if tc.cuda and tc.cuda.recipe != "none":
        checks.append(("CUDA", "nvcc --version", f"release {tc.cuda.version}"))
    if tc.cmake and tc.cmake.recipe != "none":
        checks.append(("CMake", "cmake --version", f"cmake version {tc.cmake.version}"))
    if tc.go and tc.go.recipe != "none":
        checks.append(("Go", "go version", f"go{tc.go.version}"))
    return checks


def _path_dirs(spec: Spec) -> list[str]:
    return [tool.bin_dir for _, tool in _tools(spec) if tool.bin_dir]


def _lib_dirs(spec: Spec) -> list[str]:
    return [tool.lib_dir for _, tool in _tools(spec) if tool.lib_dir]


def _build_arg_version(plan: Plan) -> str:
    return plan.spec.project.version_arg


def _ldflags(plan: Plan) -> str:
    go = plan.spec.build.go
    if go is None:
        return ""
    return go.ldflags.replace("{version}", "${" + _build_arg_version(plan) + "}")


def context(plan: Plan) -> dict[str, Any]:
    """The values every template sees."""
    spec = plan.spec
    runtime_from = "${BUILDER_IMAGE}" if spec.runtime.base == "builder" else spec.runtime.base
    return {
        "ember_version": __version__,
        "plan": plan,
        "spec": spec,
        "project": spec.project,
        "toolchain": spec.toolchain,
        "tools": _tools(spec),
        "base_packages": _base_packages(spec),
        "checks": _checks(spec),
        "path_dirs": _path_dirs(spec),
        "lib_dirs": _lib_dirs(spec),
        "build": spec.build,
        "runtime": spec.runtime,
        "runtime_from": runtime_from,
        "source": spec.source,
        "version_arg": _build_arg_version(plan),
        "version_ref": "${" + _build_arg_version(plan) + "}",
        "ldflags": _ldflags(plan),
        "ca_mount": f"--mount=type=secret,id={CA_SECRET_ID}",
        "ca_path": CA_SECRET_PATH,
        "ca_prelude": ca_prelude(),
        "network_flag": "--network host " if spec.engine.network == "host" else "",
        "cuda_architectures": plan.target.cuda_architectures,
        "compose_file": COMPOSE_FILE,
    }


def render_template(name: str, plan: Plan, **extra: Any) -> str:
    """Render one template with the plan's context."""
    template = _env().get_template(name)
    text: str = template.render(**context(plan), **extra)
    return text


def render_builder(plan: Plan) -> str:
    """builder/Dockerfile: the toolchain image."""
    return render_template("builder.Dockerfile.j2", plan)


def render_runtime(plan: Plan, *, local: bool) -> str:
    """runtime/Dockerfile (git clone) or runtime/Dockerfile.local (COPY of the tree)."""
    return render_template("runtime.Dockerfile.j2", plan, local=local)


def render_all(plan: Plan) -> dict[str, str]:
    """All six files of the rendered folder, by relative path."""
    from ember.render.compose import render_compose

    return {
        BUILDER_DOCKERFILE: render_builder(plan),
        GIT_DOCKERFILE: render_runtime(plan, local=False),
        LOCAL_DOCKERFILE: render_runtime(plan, local=True),
        COMPOSE_FILE: render_compose(plan, gpu=plan.spec.compose.gpu),
        ENV_FILE: render_template("env.example.j2", plan),
        README_FILE: render_template("README.md.j2", plan),
    }
