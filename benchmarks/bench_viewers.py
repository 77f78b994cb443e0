"""Per-run cost of the viewer attributes (``spanhook.tracing.viewers``): the OpenInference span
kind on every run, and, for runs with tags or metadata, ``context_attributes`` (session,
user, metadata JSON, tags). Measured as the difference between raw SDK spans with and
without them, interleaved in one process through an application SDK provider with a batch
processor, and set against a whole spanhook chain run measured in the same rounds.

Run: ``python benchmarks/bench_viewers.py [--runs N] [--repeats R]``. Prints us/run and the
ratios; the figures go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench_overhead import REQUIRED_ATTRIBUTES, Echo, NoOpHandler, NullExporter, measure
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from spanhook.tracing import attributes as attr
from spanhook.tracing import viewers

METADATA = {"session_id": "sess-1", "user_id": "user-7", "tenant": "acme"}
TAGS = ["web", "beta"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2_000, help="calls per round")
    ap.add_argument("--repeats", type=int, default=25, help="interleaved rounds")
    args = ap.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bench")
    handler = NoOpHandler()
    chain = Echo()

    required = dict(REQUIRED_ATTRIBUTES)
    with_kind = {**required, viewers.SPAN_KIND: viewers.SPAN_KINDS["chain"]}
    context: dict[str, Any] = {
        **with_kind,
        attr.TAGS: TAGS,
        **attr.metadata_attributes(METADATA, 4096),
    }

    def span(attributes: dict[str, Any]) -> None:
        with tracer.start_as_current_span("Echo", attributes=attributes):
            pass

    def span_with_context_attributes() -> None:
        attributes = dict(context)
        attributes.update(viewers.context_attributes(attributes))
        span(attributes)

    results = measure(
        {
            "raw span + 2 required attributes": lambda: span(required),
            "... + openinference.span.kind": lambda: span(with_kind),
            "... + tags and 3 metadata entries": lambda: span(context),
            "... + context_attributes() (viewer forms)": span_with_context_attributes,
            "spanhook chain run": lambda: chain.invoke({"x": 1}, callbacks=[handler]),
            "spanhook chain run + tags and metadata": lambda: chain.invoke(
                {"x": 1}, callbacks=[handler], metadata=METADATA, tags=TAGS
            ),
        },
        args.runs,
        args.repeats,
    )
    for name, us in results.items():
        print(f"  {name:44s} {us:8.2f} us/run")
    r = list(results.values())
    kind_cost, context_cost = r[1] - r[0], r[3] - r[2]
    print(f"  span kind: {kind_cost:+.2f} us = {kind_cost / r[4]:+.1%} of a chain run")
    print(
        f"  session/user/metadata/tags forms: {context_cost:+.2f} us = "
        f"{context_cost / r[5]:+.1%} of a chain run with tags and metadata"
    )


if __name__ == "__main__":
    main()
