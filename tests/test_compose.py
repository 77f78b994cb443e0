"""docker-compose.yml, parsed: the default stack (collector -> Jaeger with Badger on a named
volume) and the ``scale-out`` profile (gateway -> 2 tail-sampling collectors -> Jaeger),
checked against the configs each service mounts. No Docker engine runs here; when a compose
CLI is installed (``docker compose``, or Debian's ``docker-compose``), its ``config`` checks
the file as well.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest

from collector_harness import REPO_ROOT
from scaleout_wiring import (
    COMPOSE_FILE,
    config_mount,
    env_default,
    expose_and_published,
    host_port,
    load_yaml,
    mounts,
)

SCALE_OUT = ("gateway", "tailsampling-a", "tailsampling-b")
EXACT_TAG = re.compile(r"^\d+\.\d+\.\d+$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def script_setting(script: str, name: str) -> str:
    text = (REPO_ROOT / "scripts" / script).read_text(encoding="utf-8")
    match = re.search(rf'^{name}="([^"]+)"', text, re.MULTILINE)
    assert match, f"{name} not set in {script}"
    return match.group(1)


def config_of(service: dict[str, Any]) -> dict[str, Any]:
    return load_yaml(REPO_ROOT / config_mount(service))


def test_profiles(services: dict[str, dict[str, Any]]) -> None:
    default = {name for name, s in services.items() if not s.get("profiles")}
    assert default == {"volume-init", "jaeger", "otel-collector", "prometheus"}
    for name in SCALE_OUT:
        assert services[name]["profiles"] == ["scale-out"]


def test_jaeger_keeps_traces_in_badger_on_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    jaeger = services["jaeger"]
    assert config_mount(jaeger) == "jaeger-badger.yaml"
    backend = next(iter(config_of(jaeger)["extensions"]["jaeger_storage"]["backends"].values()))
    data_dirs = {
        env_default(d).rsplit("/", 1)[0] for d in backend["badger"]["directories"].values()
    }
    [data_dir] = data_dirs
    volume = mounts(jaeger)[data_dir]
    assert volume in compose["volumes"], f"{data_dir} is not on a named volume"
    assert jaeger["depends_on"]["volume-init"]["condition"] == "service_completed_successfully"


def test_queues_are_on_named_volumes_one_per_collector(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    volumes = []
    for name in SCALE_OUT:
        queue = config_of(services[name])["extensions"]["file_storage/queue"]
        volume = mounts(services[name])[env_default(queue["directory"])]
        assert volume in compose["volumes"], name
        volumes.append(volume)
    assert len(set(volumes)) == len(SCALE_OUT), "collectors must not share a queue directory"


def test_volume_init_makes_every_named_volume_writable(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    init = services["volume-init"]
    assert init["user"] == "root"
    command = init["command"]
    assert command[:2] == ["chown", "10001:10001"]  # the uid the collector and Jaeger images use
    init_mounts = mounts(init)
    assert {init_mounts[path] for path in command[2:]} == set(compose["volumes"])
    for name, service in services.items():
        named = {src for src in mounts(service).values() if src in compose["volumes"]}
        if named and name != "volume-init":
            assert service["depends_on"]["volume-init"]["condition"] == (
                "service_completed_successfully"
            ), name


def test_gateway_reaches_both_tailsampling_collectors(services: dict[str, dict[str, Any]]) -> None:
    gateway = config_of(services["gateway"])
    hostnames = gateway["exporters"]["load_balancing"]["resolver"]["static"]["hostnames"]
    targets = [host_port(h) for h in hostnames]
    assert {host for host, _ in targets} == {"tailsampling-a", "tailsampling-b"}
    for host, port in targets:
        receiver = config_of(services[host])["receivers"]["otlp"]["protocols"]["grpc"]
        assert host_port(receiver["endpoint"])[1] == port
        assert port in expose_and_published(services[host])
        assert host in services["gateway"]["depends_on"]
    # apps reach the gateway on the host, on ports of its own
    published = {str(p) for p in services["gateway"]["ports"]}
    assert published == {"4327:4317", "4328:4318"}
    receivers = gateway["receivers"]["otlp"]["protocols"]
    assert {host_port(receivers[p]["endpoint"])[1] for p in ("grpc", "http")} == {4317, 4318}


def test_tailsampling_collectors_send_to_jaeger(services: dict[str, dict[str, Any]]) -> None:
    jaeger_config = config_of(services["jaeger"])
    jaeger_grpc = host_port(jaeger_config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])[1]
    assert jaeger_grpc in expose_and_published(services["jaeger"])
    for name in ("tailsampling-a", "tailsampling-b", "otel-collector"):
        exporters = config_of(services[name])["exporters"]
        [endpoint] = [e["endpoint"] for e in exporters.values() if "endpoint" in e]
        assert host_port(endpoint) == ("jaeger", jaeger_grpc), name
        assert "jaeger" in services[name]["depends_on"]


def test_graceful_stop_outlasts_the_decision_wait(services: dict[str, dict[str, Any]]) -> None:
    for name in ("tailsampling-a", "tailsampling-b"):
        wait = config_of(services[name])["processors"]["tail_sampling"]["decision_wait"]
        grace = services[name]["stop_grace_period"]
        assert int(grace.rstrip("s")) > int(env_default(wait).rstrip("s")), name


def test_no_host_port_is_published_twice(services: dict[str, dict[str, Any]]) -> None:
    host_ports = [str(p).split(":")[0] for s in services.values() for p in s.get("ports") or []]
    assert len(host_ports) == len(set(host_ports)), host_ports


def test_images_are_pinned_to_the_tested_releases(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        tag = service["image"].rpartition(":")[2]
        assert EXACT_TAG.match(tag.removeprefix("v")), (
            f"{name}: {service['image']} is not an exact version"
        )
    scaleout_version = script_setting("build-scaleout-collector.sh", "OTELCOL_VERSION")
    for name in SCALE_OUT:
        assert services[name]["image"] == f"otel/opentelemetry-collector-contrib:{scaleout_version}"
    jaeger_version = script_setting("build-jaeger.sh", "JAEGER_VERSION")
    assert services["jaeger"]["image"] == f"jaegertracing/jaeger:{jaeger_version}"


def compose_cli() -> list[str] | None:
    """``docker compose`` (v2) if installed, else Debian's ``docker-compose`` (v1), else None."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.parametrize("profile", [None, "scale-out"])
def test_compose_cli_accepts_the_file(profile: str | None) -> None:
    cli = compose_cli()
    if cli is None:
        message = "no compose CLI installed (`docker compose`, or Debian's docker-compose): run scripts/install-compose.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    args = [*cli, "-f", str(COMPOSE_FILE)]
    if profile:
        args += ["--profile", profile]
    done = subprocess.run([*args, "config", "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    services = subprocess.run([*args, "config", "--services"], capture_output=True, text=True)
    assert services.returncode == 0, services.stderr
    assert {"volume-init", "jaeger", "otel-collector"} <= set(services.stdout.split())
