"""Wiring of the scale-out configs: collector-gateway.yaml (tier 1),
collector-tailsampling.yaml (tier 2), jaeger-badger.yaml, and the builder manifest that
must build exactly the components the two Collector configs use.

The static tests only parse YAML. The tests marked ``collector`` ask the binary built by
scripts/build-scaleout-collector.sh itself (``components``, ``validate``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaleout_harness import (
    BUILD_SCALEOUT_SCRIPT,
    GATEWAY_CONFIG,
    JAEGER_BADGER_CONFIG,
    SCALEOUT_MANIFEST,
    TAILSAMPLING_CONFIG,
    require_scaleout_binary,
)
from scaleout_wiring import (
    component_type,
    defined_components,
    env_default,
    env_names,
    load_yaml,
    used_components,
    walk,
)

COLLECTOR_CONFIGS = {"gateway": GATEWAY_CONFIG, "tailsampling": TAILSAMPLING_CONFIG}
ALL_CONFIGS = {**COLLECTOR_CONFIGS, "jaeger": JAEGER_BADGER_CONFIG}

# upstream module directory -> component type it registers (current name)
MODULE_TYPES = {
    "otlpreceiver": ("receivers", "otlp"),
    "batchprocessor": ("processors", "batch"),
    "memorylimiterprocessor": ("processors", "memory_limiter"),
    "tailsamplingprocessor": ("processors", "tail_sampling"),
    "otlpexporter": ("exporters", "otlp_grpc"),
    "loadbalancingexporter": ("exporters", "load_balancing"),
    "filestorage": ("extensions", "file_storage"),
}


def build_version() -> str:
    text = BUILD_SCALEOUT_SCRIPT.read_text(encoding="utf-8")
    return text.split('OTELCOL_VERSION="', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="module")
def gateway() -> dict[str, Any]:
    return load_yaml(GATEWAY_CONFIG)


@pytest.fixture(scope="module")
def tailsampling() -> dict[str, Any]:
    return load_yaml(TAILSAMPLING_CONFIG)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return load_yaml(SCALEOUT_MANIFEST)


# ---------------------------------------------------------------- every config


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_every_used_component_is_defined_and_every_defined_one_used(name: str) -> None:
    config = load_yaml(ALL_CONFIGS[name])
    assert config["service"]["pipelines"]["traces"]["receivers"]
    assert config["service"]["pipelines"]["traces"]["exporters"]
    used, defined = used_components(config), defined_components(config)
    assert used - defined == set(), f"{name}: used but not defined"
    assert defined - used == set(), f"{name}: defined but unused"


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_every_storage_reference_is_an_enabled_extension(name: str) -> None:
    config = load_yaml(ALL_CONFIGS[name])
    enabled = set(config["service"].get("extensions") or [])
    refs = [(path, value) for path, value in walk(config) if path.endswith(".storage")]
    if name == "jaeger":
        # jaeger_query.storage is a mapping of backends (checked below), not a reference
        assert refs == []
        return
    assert refs, f"{name} has no file-backed queue"
    for path, value in refs:
        assert path.endswith("sending_queue.storage"), path
        assert component_type(str(value)) == "file_storage" and value in enabled, (path, value)


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_every_env_override_has_a_default(name: str) -> None:
    config = load_yaml(ALL_CONFIGS[name])
    assert env_names(config), f"{name} cannot be pointed at test addresses"
    for path, value in walk(config):
        if isinstance(value, str) and "${" in value:
            assert env_default(value), path  # raises on a reference without a default
            assert "${env:" in value, f"{path}: only the env provider is built in"


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_servers_listen_on_all_interfaces_by_default(name: str) -> None:
    # In a container, a localhost default (Collector >= v0.104) would be unreachable.
    config = load_yaml(ALL_CONFIGS[name])
    servers = [
        (path, value)
        for path, value in walk(config)
        if path.endswith(".endpoint")
        and (path.startswith("receivers.") or path.startswith("extensions.jaeger_query"))
    ]
    assert servers
    for path, value in servers:
        assert env_default(value).startswith("0.0.0.0:"), (path, value)


# ---------------------------------------------------------------- tier 1: the gateway


def test_gateway_routes_by_trace_id_to_two_static_backends(gateway: dict[str, Any]) -> None:
    traces = gateway["service"]["pipelines"]["traces"]
    assert traces["processors"][0] == "memory_limiter"
    assert [component_type(e) for e in traces["exporters"]] == ["load_balancing"]
    lb = gateway["exporters"][traces["exporters"][0]]
    assert lb["routing_key"] == "traceID"
    hostnames = [env_default(h) for h in lb["resolver"]["static"]["hostnames"]]
    assert hostnames == ["tailsampling-a:4317", "tailsampling-b:4317"]
    assert set(lb["resolver"]) == {"static"}
    assert lb["protocol"]["otlp"]["tls"]["insecure"] is True
    assert {"OTELCOL_OTLP_GRPC_ENDPOINT", "TAILSAMPLING_A_ENDPOINT"} <= env_names(gateway)


def test_gateway_keeps_unaccepted_data_on_disk_and_retries_forever(
    gateway: dict[str, Any],
) -> None:
    lb = gateway["exporters"]["load_balancing"]
    assert lb["sending_queue"]["enabled"] is True
    assert lb["retry_on_failure"]["enabled"] is True
    assert lb["retry_on_failure"]["max_elapsed_time"] == 0
    # No in-memory queue per backend: everything not accepted stays in the disk queue.
    assert lb["protocol"]["otlp"]["sending_queue"]["enabled"] is False
    assert lb["protocol"]["otlp"]["retry_on_failure"]["enabled"] is False


# ---------------------------------------------------------------- tier 2: tail sampling


def test_tailsampling_pipeline_order(tailsampling: dict[str, Any]) -> None:
    traces = tailsampling["service"]["pipelines"]["traces"]
    assert traces["processors"] == ["memory_limiter", "tail_sampling", "batch"]
    [exporter] = traces["exporters"]
    assert component_type(exporter) == "otlp_grpc"
    settings = tailsampling["exporters"][exporter]
    assert env_default(settings["endpoint"]) == "jaeger:4317"
    assert settings["sending_queue"]["enabled"] is True
    assert settings["retry_on_failure"]["max_elapsed_time"] == 0


def test_tailsampling_policies(tailsampling: dict[str, Any]) -> None:
    config = tailsampling["processors"]["tail_sampling"]
    policies = {p["type"]: p for p in config["policies"]}
    assert set(policies) == {"status_code", "latency", "probabilistic"}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert int(env_default(policies["latency"]["latency"]["threshold_ms"])) > 0
    percent = float(env_default(policies["probabilistic"]["probabilistic"]["sampling_percentage"]))
    assert 0 < percent < 100
    # The tests reimplement the probabilistic hash with the processor's default salt.
    assert "hash_salt" not in policies["probabilistic"]["probabilistic"]
    assert env_default(config["decision_wait"]).endswith("s")
    cache = config["decision_cache"]
    assert cache["sampled_cache_size"] >= config["num_traces"]


# ---------------------------------------------------------------- Jaeger with Badger


def test_jaeger_stores_in_badger_on_disk() -> None:
    config = load_yaml(JAEGER_BADGER_CONFIG)
    backends = config["extensions"]["jaeger_storage"]["backends"]
    [(name, backend)] = backends.items()
    badger = backend["badger"]
    assert badger["ephemeral"] is False
    dirs = {env_default(d) for d in badger["directories"].values()}
    assert dirs == {"/badger/keys", "/badger/values"}
    assert config["extensions"]["jaeger_query"]["storage"]["traces"] == name
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == name


# ---------------------------------------------------------------- the builder manifest


def test_manifest_builds_exactly_the_components_the_configs_use(
    manifest: dict[str, Any], gateway: dict[str, Any], tailsampling: dict[str, Any]
) -> None:
    version = build_version()
    assert str(manifest["dist"]["version"]) == version
    built: set[tuple[str, str]] = set()
    for kind in ("receivers", "processors", "exporters", "extensions"):
        for entry in manifest[kind]:
            module, module_version = entry["gomod"].split()
            assert module_version == f"v{version}", entry  # one release for every module
            built_kind, built_type = MODULE_TYPES[module.rsplit("/", 1)[-1]]
            assert built_kind == kind, entry
            built.add((kind, built_type))
    used = {
        (kind, component_type(cid))
        for config in (gateway, tailsampling)
        for kind, cid in defined_components(config)
    }
    assert built == used
    minor = int(version.split(".")[1])
    providers = {
        e["gomod"].split()[0].rsplit("/", 1)[-1]: e["gomod"].split()[1]
        for e in manifest["providers"]
    }
    assert providers == {"envprovider": f"v1.{minor - 94}.0", "fileprovider": f"v1.{minor - 94}.0"}


# ---------------------------------------------------------------- the built binary itself


@pytest.mark.collector
def test_built_collector_has_exactly_the_manifest_components(manifest: dict[str, Any]) -> None:
    binary = require_scaleout_binary()
    done = subprocess.run([binary, "components"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = yaml.safe_load(done.stdout)
    assert listed["buildinfo"]["version"] == build_version()
    for kind in ("receivers", "processors", "exporters", "extensions"):
        in_binary = {(c["name"], c["module"]) for c in listed.get(kind) or []}
        in_manifest = {
            (MODULE_TYPES[e["gomod"].split()[0].rsplit("/", 1)[-1]][1], e["gomod"])
            for e in manifest[kind]
        }
        assert in_binary == in_manifest, kind
    assert listed["connectors"] == []
    assert {p["scheme"] for p in listed["providers"]} == {"env", "file"}


@pytest.mark.collector
@pytest.mark.parametrize("name", sorted(COLLECTOR_CONFIGS))
def test_built_collector_validates_the_config(name: str, tmp_path: Path) -> None:
    binary = require_scaleout_binary()
    done = subprocess.run(
        [binary, "validate", f"--config={COLLECTOR_CONFIGS[name]}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "GATEWAY_QUEUE_DIR": str(tmp_path),
            "TAILSAMPLING_QUEUE_DIR": str(tmp_path),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deprecated" not in (done.stdout + done.stderr).lower()
