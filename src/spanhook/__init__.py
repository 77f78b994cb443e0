"""spanhook: LangChain-style callbacks for LLM applications, built natively on OpenTelemetry.

Every chain, model, tool, agent and retriever run is an OTel span; a bridge turns the
spans' start, end, error and events back into ``BaseCallbackHandler`` calls.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("spanhook")  # one source: pyproject.toml
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

from spanhook.runtime.run import Run, current_run
from spanhook.tracing.configure import configure, force_flush, shutdown
from spanhook.tracing.export_registry import ExportStats, export_stats
from spanhook.tracing.logs import RunLogFilter
from spanhook.tracing.propagation import continue_trace, extract_context, inject_headers
from spanhook.tracing.sampling import KeepErrorsSampler
from spanhook.tracing.settings import capture_content
from spanhook.tracing.threads import ContextThreadPoolExecutor, carry, submit_with_context

__all__ = [
    "ContextThreadPoolExecutor",
    "ExportStats",
    "KeepErrorsSampler",
    "Run",
    "RunLogFilter",
    "__version__",
    "capture_content",
    "carry",
    "configure",
    "continue_trace",
    "current_run",
    "export_stats",
    "extract_context",
    "force_flush",
    "inject_headers",
    "shutdown",
    "submit_with_context",
]
