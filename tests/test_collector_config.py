"""The Collector + Jaeger integration artefacts: collector-config.yaml, docker-compose.yml, builds.

The static tests only parse YAML. The tests marked ``collector`` run the binaries built by
scripts/build-collector.sh and scripts/build-jaeger.sh (skipped when missing, failed under CI).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from collector_harness import (
    COLLECTOR_CONFIG,
    JAEGER_TEST_CONFIG,
    REPO_ROOT,
    GrpcTraceReceiver,
    HttpTraceReceiver,
    ReceivedSpan,
    collector_binary,
    jaeger_binary,
    jaeger_services,
    jaeger_traces,
    require_binary,
    run_collector,
    run_jaeger,
    wait_until,
)

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
BUILDER_MANIFEST = REPO_ROOT / "scripts" / "otelcol-builder.yaml"
BUILD_COLLECTOR = REPO_ROOT / "scripts" / "build-collector.sh"
BUILD_JAEGER = REPO_ROOT / "scripts" / "build-jaeger.sh"

ENV_EXPR = re.compile(r"^\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}$")
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def env_default(value: str) -> str:
    """The default of a Collector `${env:NAME:-default}` expression (the value itself if plain)."""
    match = ENV_EXPR.match(str(value))
    if match is None:
        return str(value)
    assert match.group("default"), f"{value} has no default, docker compose would break"
    return match.group("default")


def component_type(component_id: str) -> str:
    """`otlp_grpc/jaeger` -> `otlp_grpc`."""
    return component_id.split("/", 1)[0]


def script_setting(script: Path, name: str) -> str:
    match = re.search(rf'^{name}="([^"]+)"', script.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{name} not set in {script}"
    return match.group(1)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = load_yaml(COLLECTOR_CONFIG)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = load_yaml(BUILDER_MANIFEST)
    assert isinstance(data, dict)
    return data


def jaeger_exporter(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    found = [
        name
        for name in exporters
        if component_type(name) in ("otlp_grpc", "otlp")
        and env_default(config["exporters"][name]["endpoint"]).startswith("jaeger:")
    ]
    assert len(found) == 1, f"expected one OTLP gRPC exporter to jaeger among {exporters}"
    return found[0], config["exporters"][found[0]]


# ---------------------------------------------------------------- collector-config.yaml


def test_every_pipeline_component_is_defined(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"]
    assert "traces" in pipelines
    for pipeline_name, pipeline in pipelines.items():
        assert pipeline.get("receivers"), f"{pipeline_name} has no receivers"
        assert pipeline.get("exporters"), f"{pipeline_name} has no exporters"
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind) or []:
                assert component_id in (config.get(kind) or {}), (
                    f"{pipeline_name}: {kind[:-1]} {component_id!r} is not defined"
                )


def test_no_unused_components(config: dict[str, Any]) -> None:
    used = {
        (kind, cid)
        for pipeline in config["service"]["pipelines"].values()
        for kind in ("receivers", "processors", "exporters")
        for cid in pipeline.get(kind) or []
    }
    for kind in ("receivers", "processors", "exporters"):
        for cid in config.get(kind) or {}:
            assert (kind, cid) in used, f"{kind[:-1]} {cid!r} is defined but unused"


def test_traces_pipeline_receives_otlp_on_grpc_and_http(config: dict[str, Any]) -> None:
    traces = config["service"]["pipelines"]["traces"]
    otlp = [r for r in traces["receivers"] if component_type(r) == "otlp"]
    assert otlp, "traces pipeline has no otlp receiver"
    protocols = config["receivers"][otlp[0]]["protocols"]
    # In a container the endpoints must be 0.0.0.0 (the default is localhost since v0.104).
    assert env_default(protocols["grpc"]["endpoint"]) == "0.0.0.0:4317"
    assert env_default(protocols["http"]["endpoint"]) == "0.0.0.0:4318"
    assert component_type(traces["processors"][0]) == "batch"


def test_env_overrides_use_collector_syntax(config: dict[str, Any]) -> None:
    protocols = config["receivers"]["otlp"]["protocols"]
    _, exporter = jaeger_exporter(config)
    names = {
        ENV_EXPR.match(value).group("name")  # type: ignore[union-attr]
        for value in (
            protocols["grpc"]["endpoint"],
            protocols["http"]["endpoint"],
            exporter["endpoint"],
            prometheus_exporter(config)[1]["metrics_endpoint"],
        )
        if ENV_EXPR.match(value)
    }
    # tests/collector_harness.py:run_collector sets exactly these.
    assert names == {
        "OTELCOL_OTLP_GRPC_ENDPOINT",
        "OTELCOL_OTLP_HTTP_ENDPOINT",
        "JAEGER_OTLP_ENDPOINT",
        "METRICS_OTLP_ENDPOINT",
    }


def prometheus_exporter(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    exporters = config["service"]["pipelines"]["metrics"]["exporters"]
    found = [name for name in exporters if component_type(name) == "otlp_http"]
    assert len(found) == 1, f"expected one OTLP/HTTP exporter among {exporters}"
    return found[0], config["exporters"][found[0]]


def test_metrics_pipeline_exports_to_prometheus_over_otlp_http(config: dict[str, Any]) -> None:
    metrics = config["service"]["pipelines"]["metrics"]
    assert metrics["receivers"] == config["service"]["pipelines"]["traces"]["receivers"]
    assert [component_type(p) for p in metrics["processors"]] == ["batch"]
    _, exporter = prometheus_exporter(config)
    # Prometheus' OTLP ingestion path (it takes OTLP over HTTP only).
    assert env_default(exporter["metrics_endpoint"]) == (
        "http://prometheus:9090/api/v1/otlp/v1/metrics"
    )
    assert "debug" in metrics["exporters"]


def test_compose_runs_prometheus_with_otlp_ingestion(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert prometheus["image"].split(":")[0] == "prom/prometheus"
    assert int(image_tag(prometheus["image"]).lstrip("v").split(".")[0]) >= 3
    assert "--web.enable-otlp-receiver" in prometheus["command"]
    assert "9090:9090" in published(prometheus)
    assert "prometheus" in compose["services"]["otel-collector"]["depends_on"]


def test_traces_pipeline_exports_to_jaeger_over_otlp_grpc(config: dict[str, Any]) -> None:
    name, exporter = jaeger_exporter(config)
    # Collector >= v0.144 names the gRPC exporter otlp_grpc (otlp is a deprecated alias).
    assert component_type(name) == "otlp_grpc"
    assert env_default(exporter["endpoint"]) == "jaeger:4317"
    assert exporter["tls"]["insecure"] is True
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    assert "debug" in exporters
    assert config["exporters"]["debug"]["verbosity"] == "basic"


# ---------------------------------------------------------------- docker-compose.yml


def published(service: dict[str, Any]) -> set[str]:
    return {str(p) for p in service.get("ports") or []}


def image_tag(image: str) -> str:
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"image {image!r} has no tag"
    return tag


def test_compose_services_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"jaeger", "otel-collector"} <= set(services)
    collector, jaeger = services["otel-collector"], services["jaeger"]
    assert {"4317:4317", "4318:4318"} <= published(collector)
    assert "16686:16686" in published(jaeger)
    # Jaeger's OTLP ports stay internal: only the collector talks to them.
    assert not any(p.split(":")[-1] in ("4317", "4318") for p in published(jaeger))
    depends_on = collector.get("depends_on") or []
    assert "jaeger" in depends_on


def test_compose_mounts_the_collector_config(compose: dict[str, Any]) -> None:
    collector = compose["services"]["otel-collector"]
    mounts = [str(v).split(":") for v in collector.get("volumes") or []]
    targets = [m[1] for m in mounts if m[0] == "./collector-config.yaml"]
    assert len(targets) == 1, mounts
    command = collector.get("command") or []
    assert f"--config={targets[0]}" in command


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert "latest" not in image
        assert EXACT_TAG.match(image_tag(image)), f"{name}: {image} is not an exact version"


def test_versions_agree_with_the_builds(compose: dict[str, Any], manifest: dict[str, Any]) -> None:
    otelcol_version = script_setting(BUILD_COLLECTOR, "OTELCOL_VERSION")
    collector_image = compose["services"]["otel-collector"]["image"]
    # The core distribution has every component we use; contrib would do too.
    assert collector_image.split(":")[0] in (
        "otel/opentelemetry-collector",
        "otel/opentelemetry-collector-contrib",
    )
    assert image_tag(collector_image) == otelcol_version
    assert str(manifest["dist"]["version"]) == otelcol_version

    jaeger_version = script_setting(BUILD_JAEGER, "JAEGER_VERSION")
    jaeger_image = compose["services"]["jaeger"]["image"]
    assert jaeger_image.split(":")[0].endswith("jaegertracing/jaeger")  # v2, not all-in-one
    assert image_tag(jaeger_image) == jaeger_version
    # Jaeger v2.X.0 is tagged v1.(X+63).0 as a Go module on the same commit.
    major, minor, patch = (int(p) for p in jaeger_version.split("."))
    assert major == 2
    go_module = script_setting(BUILD_JAEGER, "JAEGER_GO_MODULE_VERSION")
    assert go_module == f"v1.{minor + 63}.{patch}"


def test_builder_manifest_has_exactly_the_config_components(
    config: dict[str, Any], manifest: dict[str, Any]
) -> None:
    otelcol_version = script_setting(BUILD_COLLECTOR, "OTELCOL_VERSION")
    # upstream module directory -> component type it registers
    module_types = {
        "otlpreceiver": "otlp",
        "batchprocessor": "batch",
        "otlpexporter": "otlp_grpc",
        "debugexporter": "debug",
        "otlphttpexporter": "otlp_http",
    }
    for kind in ("receivers", "processors", "exporters"):
        built: set[str] = set()
        for entry in manifest[kind]:
            module, version = entry["gomod"].split()
            assert module.startswith(f"go.opentelemetry.io/collector/{kind[:-1]}/")
            assert version == f"v{otelcol_version}", entry
            built.add(module_types[module.rsplit("/", 1)[-1]])
        used = {component_type(c) for c in config[kind]}
        assert built == used, f"{kind}: manifest builds {built}, config uses {used}"

    minor = int(otelcol_version.split(".")[1])
    providers = {
        e["gomod"].split()[0].rsplit("/", 1)[-1]: e["gomod"].split()[1]
        for e in manifest["providers"]
    }
    assert set(providers) == {"envprovider", "fileprovider"}
    # stable confmap modules: v1.(N-94).0 belongs to collector v0.N.0
    assert set(providers.values()) == {f"v1.{minor - 94}.0"}


def test_jaeger_test_config_listens_on_loopback_only() -> None:
    text = JAEGER_TEST_CONFIG.read_text(encoding="utf-8")
    endpoints = re.findall(r"endpoint:\s*\"?([^\"\n]+)", text)
    assert endpoints
    for endpoint in endpoints:
        assert env_default(endpoint.strip()).startswith("127.0.0.1:"), endpoint


# ---------------------------------------------------------------- the OTLP receivers themselves


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK exporters read OTEL_EXPORTER_OTLP_*; keep the runner's settings out."""
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)


def send_trace(exporter: SpanExporter, service: str) -> tuple[str, str, str]:
    """Export a parent and a child span; returns (trace id, parent id, child id) in hex."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("spanhook.tests.collector")
    try:
        with (
            tracer.start_as_current_span("parent") as parent,
            tracer.start_as_current_span("child", attributes={"test.key": "v"}) as child,
        ):
            pass
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    return (
        format_trace_id(parent.get_span_context().trace_id),
        format_span_id(parent.get_span_context().span_id),
        format_span_id(child.get_span_context().span_id),
    )


def assert_trace_arrived(
    spans: list[ReceivedSpan], service: str, ids: tuple[str, str, str]
) -> None:
    trace_id, parent_id, child_id = ids
    mine = {s.span.name: s for s in spans if s.resource.get("service.name") == service}
    assert set(mine) == {"parent", "child"}, [(s.resource, s.span.name) for s in spans]
    parent, child = mine["parent"], mine["child"]
    assert parent.trace_id == child.trace_id == trace_id
    assert (parent.span_id, child.span_id) == (parent_id, child_id)
    assert parent.parent_span_id == ""
    assert child.parent_span_id == parent_id
    assert child.attributes["test.key"] == "v"


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "gzip"])
def test_receivers_decode_sdk_exports(compression: bool) -> None:
    with GrpcTraceReceiver() as grpc_rx, HttpTraceReceiver() as http_rx:
        grpc_ids = send_trace(
            GrpcSpanExporter(
                endpoint=grpc_rx.endpoint,
                insecure=True,
                compression=grpc.Compression.Gzip
                if compression
                else grpc.Compression.NoCompression,
            ),
            "svc-grpc",
        )
        http_ids = send_trace(
            HttpSpanExporter(
                endpoint=http_rx.endpoint,
                compression=HttpCompression.Gzip if compression else HttpCompression.NoCompression,
            ),
            "svc-http",
        )
        assert_trace_arrived(grpc_rx.wait_for(2, timeout=10), "svc-grpc", grpc_ids)
        assert_trace_arrived(http_rx.wait_for(2, timeout=10), "svc-http", http_ids)
        assert {e.transport for e in grpc_rx.exports} == {"grpc"}
        assert {e.transport for e in http_rx.exports} == {"http"}
        if compression:
            assert {e.headers.get("content-encoding") for e in http_rx.exports} == {"gzip"}
        assert set(grpc_rx.spans_by_scope()) == {"spanhook.tests.collector"}


# ---------------------------------------------------------------- the real collector / Jaeger


@pytest.fixture
def backend() -> Iterator[GrpcTraceReceiver]:
    with GrpcTraceReceiver() as receiver:
        yield receiver


@pytest.mark.collector
def test_collector_forwards_grpc_and_http_exports(backend: GrpcTraceReceiver) -> None:
    collector_bin = require_binary(collector_binary(), "collector")
    with run_collector(jaeger_endpoint=backend.endpoint, binary=collector_bin) as collector:
        grpc_ids = send_trace(
            GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True), "spanhook-it-grpc"
        )
        http_ids = send_trace(
            HttpSpanExporter(endpoint=collector.http_traces_url), "spanhook-it-http"
        )
        try:
            spans = backend.wait_for(4, timeout=30)
        except TimeoutError:
            pytest.fail(f"spans did not reach the backend; collector output:\n{collector.output()}")
        assert_trace_arrived(spans, "spanhook-it-grpc", grpc_ids)
        assert_trace_arrived(spans, "spanhook-it-http", http_ids)
        # The debug exporter logs each batch (verbosity basic).
        collector.process.wait_for_output('"spans"', timeout=10)
        assert "deprecated" not in collector.output().lower()


@pytest.mark.collector
def test_collector_to_jaeger_end_to_end() -> None:
    collector_bin = require_binary(collector_binary(), "collector")
    jaeger_bin = require_binary(jaeger_binary(), "jaeger")
    service = f"spanhook-e2e-{uuid.uuid4().hex[:8]}"
    with (
        run_jaeger(binary=jaeger_bin) as jaeger,
        run_collector(jaeger_endpoint=jaeger.otlp_grpc_endpoint, binary=collector_bin) as col,
    ):
        trace_id, parent_id, child_id = send_trace(
            GrpcSpanExporter(endpoint=col.grpc_endpoint, insecure=True), service
        )

        def complete_trace() -> dict[str, Any] | None:
            for trace in jaeger_traces(jaeger.query_port, service):
                if trace["traceID"] == trace_id and len(trace["spans"]) == 2:
                    return trace
            return None

        try:
            trace = wait_until(complete_trace, timeout=30, interval=0.25, message="trace in Jaeger")
        except TimeoutError:
            pytest.fail(
                f"trace not in Jaeger.\ncollector:\n{col.output()}\njaeger:\n{jaeger.output()}"
            )
        assert service in jaeger_services(jaeger.query_port)
        spans = {s["operationName"]: s for s in trace["spans"]}
        assert spans["parent"]["spanID"] == parent_id
        assert spans["child"]["spanID"] == child_id
        assert spans["parent"]["references"] == []
        assert spans["child"]["references"] == [
            {"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent_id}
        ]
        process = trace["processes"][spans["child"]["processID"]]
        assert process["serviceName"] == service
        tags = {t["key"]: t["value"] for t in spans["child"]["tags"]}
        assert tags["test.key"] == "v"


@pytest.mark.collector
def test_collector_forwards_metrics_to_the_metrics_backend() -> None:
    """OTLP metrics in over gRPC and HTTP, out over OTLP/HTTP to a real receiver."""
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
        OTLPMetricExporter as GrpcMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from metrics_harness import HttpMetricsReceiver

    collector_bin = require_binary(collector_binary(), "collector")
    with (
        HttpMetricsReceiver() as backend,
        run_collector(binary=collector_bin, metrics_endpoint=backend.endpoint) as collector,
    ):
        for service, exporter in (
            ("metrics-grpc", GrpcMetricExporter(endpoint=collector.grpc_endpoint, insecure=True)),
            (
                "metrics-http",
                HttpMetricExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/metrics"),
            ),
        ):
            reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
            provider = MeterProvider(
                metric_readers=[reader], resource=Resource.create({"service.name": service})
            )
            histogram = provider.get_meter("spanhook.tests").create_histogram(
                "test.duration", unit="s"
            )
            histogram.record(0.25, {"test.key": service})
            provider.shutdown()  # final collection and export

        def both(points: list[Any]) -> bool:
            return {p.resource.get("service.name") for p in points} >= {
                "metrics-grpc",
                "metrics-http",
            }

        try:
            points = backend.wait_for(both, timeout=30)
        except TimeoutError:
            pytest.fail(f"metrics did not reach the backend; collector:\n{collector.output()}")
        for point in points:
            assert (point.name, point.unit, point.kind) == ("test.duration", "s", "histogram")
            assert point.attributes == {"test.key": point.resource["service.name"]}
            assert (point.point.count, point.point.sum) == (1, 0.25)
        collector.process.wait_for_output('"metrics"', timeout=10)
        assert "deprecated" not in collector.output().lower()
