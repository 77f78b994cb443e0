"""``LangChainInstrumentor``: spanhook's LangChain tracing as an OpenTelemetry instrumentor,
registered under the ``opentelemetry_instrumentor`` entry point so that
``opentelemetry-instrument python app.py`` enables it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)


class LangChainInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """``LangChainInstrumentor().instrument(verbose=False, suppress_provider_spans=True)`` /
    ``.uninstrument()``."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("langchain-core >= 0.3",)

    def _instrument(self, **kwargs: Any) -> None:
        from spanhook.langchain import instrument

        instrument(
            verbose=bool(kwargs.get("verbose", False)),
            suppress_provider_spans=bool(kwargs.get("suppress_provider_spans", True)),
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        from spanhook.langchain import uninstrument

        uninstrument()
