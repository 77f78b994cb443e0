"""Tracing langchain-core and LangGraph apps with spanhook.

``spanhook.langchain.instrument()`` makes every langchain-core run in the process a spanhook
run: one OTel span per run (langchain-core's ``run_id``, the parent run's span as parent,
one trace per request), current while the run's body executes, with spanhook's span names
and GenAI attributes. OTel span exporters and processors are accepted in langchain-core's
``callbacks`` next to its own handlers. ``uninstrument()`` removes every hook.

Needs the ``langchain`` extra: ``pip install 'spanhook[langchain]'``.
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "spanhook.langchain needs langchain-core: pip install 'spanhook[langchain]'"
    ) from e

from spanhook.langchain import hooks
from spanhook.langchain.instrumentor import LangChainInstrumentor
from spanhook.langchain.tracer import TRACER, SpanhookTracer

__all__ = [
    "LangChainInstrumentor",
    "SpanhookTracer",
    "instrument",
    "is_instrumented",
    "uninstrument",
]


def instrument(*, verbose: bool = False, suppress_provider_spans: bool = True) -> None:
    """Trace every langchain-core run in this process (idempotent). ``verbose=True`` prints
    the span tree of each finished request (as langchain-core's ``set_verbose(True)`` does).
    ``suppress_provider_spans``: inside a model run, an LLM provider instrumentation (such as
    OpenLLMetry's for the openai SDK) makes no second LLM span; ``False`` keeps its span,
    nested under the model run's."""
    TRACER.verbose = verbose
    TRACER.suppress_provider_spans = suppress_provider_spans
    hooks.install()


def uninstrument() -> None:
    """Remove every hook :func:`instrument` installed; runs still open end normally."""
    hooks.uninstall()
    TRACER.verbose = False
    TRACER.suppress_provider_spans = True


def is_instrumented() -> bool:
    return hooks.installed()
