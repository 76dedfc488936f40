"""docker-compose.yml as data: built as a dict, dumped as YAML (pure)."""

from __future__ import annotations

from typing import Any

from ember import __version__
from ember.plan import Plan


def publish_host(address: str) -> str:
    """An address as it appears before a port: IPv6 in brackets."""
    return f"[{address}]" if ":" in address else address


def compose_service(plan: Plan, *, gpu: bool) -> dict[str, Any]:
    """The compose service for the runtime image. gpu=False drops the NVIDIA parts."""
    spec = plan.spec
    comp = spec.compose
    service: dict[str, Any] = {"image": plan.runtime_image, "container_name": spec.service_name}
    if gpu and comp.runtime:
        service["runtime"] = comp.runtime
    if spec.runtime.ports:
        host = publish_host(comp.publish_address)
        service["ports"] = [f"{host}:{port}:{port}" for port in spec.runtime.ports]
    if spec.runtime.volumes:
        first, *rest = spec.runtime.volumes
        named = f"{comp.volume}:{first}" if comp.volume else first
        service["volumes"] = [named, *rest]
    if comp.environment:
        service["environment"] = dict(comp.environment)
    if gpu:
        if comp.devices:
            service["devices"] = [f"{dev}:{dev}" for dev in comp.devices]
        reservation: dict[str, Any] = {"driver": "nvidia"}
        if comp.gpus == "all":
            reservation["count"] = "all"
        else:
            reservation["device_ids"] = list(comp.gpus)
        reservation["capabilities"] = ["gpu"]
        service["deploy"] = {"resources": {"reservations": {"devices": [reservation]}}}
    service["restart"] = comp.restart
    hc = spec.runtime.healthcheck
    if hc:
        service["healthcheck"] = {
            "test": ["CMD", *hc.test],
            "interval": hc.interval,
            "timeout": hc.timeout,
            "retries": hc.retries,
            "start_period": hc.start_period,
        }
    return service


def compose_document(plan: Plan, *, gpu: bool) -> dict[str, Any]:
    """The whole compose document."""
    doc: dict[str, Any] = {"services": {plan.spec.service_name: compose_service(plan, gpu=gpu)}}
    if plan.spec.compose.volume and plan.spec.runtime.volumes:
        doc["volumes"] = {plan.spec.compose.volume: {}}
    return doc


def render_compose(plan: Plan, *, gpu: bool) -> str:
    """docker-compose.yml text, with a header that says where it came from."""
    import yaml

    spec = plan.spec
    header = [
        f"# {spec.service_name}: run {plan.runtime_image} with docker compose.",
        f"# Rendered by ember {__version__} from {plan.origin}: edit the spec and run `ember render`.",
        "#   docker compose up -d      # start; `ember up` does the same and waits until healthy",
        "#   docker compose logs -f    # follow the server's log",
    ]
    if spec.runtime.ports:
        header.append(
            f"# Ports are published on {spec.compose.publish_address} only"
            + (
                ": the API has no authentication. Set [compose] publish_address to change it."
                if spec.compose.publish_address.startswith("127.")
                else " (set in the spec)."
            )
        )
    if not gpu:
        header.append("# GPU reservation off (CPU only).")
    body = yaml.safe_dump(
        compose_document(plan, gpu=gpu), sort_keys=False, default_flow_style=False
    )
    return "\n".join(header) + "\n" + body
