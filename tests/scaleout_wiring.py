"""Static checks shared by the scale-out config tests: parse the Collector / Jaeger YAML
and the compose file. Nothing in here is a test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from collector_harness import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXPR = re.compile(r"\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
KINDS = ("receivers", "processors", "exporters", "connectors")


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def env_default(value: object) -> str:
    """``${env:NAME:-default}`` (also inside a longer string) -> the string with defaults."""

    def default(match: re.Match[str]) -> str:
        assert match.group("default") is not None, f"{value!r} has no default"
        return match.group("default")

    return ENV_EXPR.sub(default, str(value))


def env_names(node: object) -> set[str]:
    """Every ``${env:NAME...}`` referenced anywhere in a parsed YAML tree."""
    if isinstance(node, dict):
        return set().union(*(env_names(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_names(v) for v in node)) if node else set()
    return {m.group("name") for m in ENV_EXPR.finditer(str(node))}


def component_type(component_id: str) -> str:
    """``otlp_grpc/jaeger`` -> ``otlp_grpc``."""
    return component_id.split("/", 1)[0]


def used_components(config: dict[str, Any]) -> set[tuple[str, str]]:
    used = {
        (kind, cid)
        for pipeline in config["service"]["pipelines"].values()
        for kind in KINDS
        for cid in pipeline.get(kind) or []
    }
    used |= {("extensions", cid) for cid in config["service"].get("extensions") or []}
    return used


def defined_components(config: dict[str, Any]) -> set[tuple[str, str]]:
    return {(kind, cid) for kind in (*KINDS, "extensions") for cid in config.get(kind) or {}}


def walk(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    """(dotted path, value) for every leaf."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")
    else:
        yield path, node


def host_port(endpoint: object) -> tuple[str, int]:
    host, _, port = env_default(endpoint).rpartition(":")
    return host, int(port)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (``./file`` or a named volume) of a compose service."""
    out: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        out[target] = source
    return out


def expose_and_published(service: dict[str, Any]) -> set[int]:
    """Container ports a compose service makes reachable (expose + ports)."""
    ports = {int(str(p)) for p in service.get("expose") or []}
    ports |= {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports") or []}
    return ports


def config_mount(service: dict[str, Any]) -> str:
    """The repository file a compose service runs with (its ``--config=...`` mount)."""
    [target] = [c.split("=", 1)[1] for c in service["command"] if c.startswith("--config=")]
    source = mounts(service)[target]
    assert source.startswith("./"), f"{target} is not mounted from the repository"
    return source[2:]
