"""spanhook: LangChain-style callbacks for LLM applications, built natively on OpenTelemetry.

Every chain, model, tool, agent and retriever run is an OTel span; a bridge turns the
spans' start, end, error and events back into ``BaseCallbackHandler`` calls.
"""

__version__ = "0.1.0"

from spanhook.tracing.export import ExportStats, export_stats  # noqa: E402
from spanhook.tracing.run import Run, current_run  # noqa: E402
from spanhook.tracing.threads import ContextThreadPoolExecutor, carry, submit_with_context  # noqa: E402

__all__ = [
    "ContextThreadPoolExecutor",
    "ExportStats",
    "Run",
    "__version__",
    "carry",
    "current_run",
    "export_stats",
    "submit_with_context",
]

from spanhook.tracing.configure import configure, force_flush, shutdown  # noqa: E402

__all__ += ["configure", "force_flush", "shutdown"]
