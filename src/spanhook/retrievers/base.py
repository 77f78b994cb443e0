"""Retrievers: implement ``_get_relevant_documents(query, *, run_manager)``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from spanhook.primitive import (
    Primitive,
    PrimitiveOptions,
    RequestOptions,
    call_hook,
    serialized_for,
)
from spanhook.runtime.run import Run
from spanhook.runtime.scope import Request
from spanhook.runtime.start import start_run
from spanhook.schema import Document
from spanhook.tracing import attributes as attr
from spanhook.tracing.viewers import record_documents

if TYPE_CHECKING:
    from typing_extensions import Unpack


class BaseRetriever(Primitive):
    """Finds documents for a query. Every call is a retriever run."""

    def _get_relevant_documents(self, query: str, *, run_manager: Run) -> list[Document]:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _get_relevant_documents(query, *, run_manager)"
        )

    async def _aget_relevant_documents(self, query: str, *, run_manager: Run) -> list[Document]:
        return await asyncio.to_thread(self._fetch, query, run_manager)

    def _fetch(self, query: str, run: Run) -> list[Document]:
        return call_hook(self._get_relevant_documents, run, query)

    def _start(self, query: str, request: Request) -> Run:
        if not isinstance(query, str):
            raise TypeError(f"{self.get_name()} takes a query string, got {type(query).__name__}")
        name = request.run_name or self.get_name()
        run = start_run(
            "retriever",
            self,
            request,
            name=name,
            span_name=f"retrieval {name}",
            start_args=(serialized_for(self), query),
            start_kwargs={"name": name},
            attributes={attr.GEN_AI_OPERATION_NAME: "retrieval"},
        )
        run.record_content(attr.INPUT, query)
        return run

    def _done(self, run: Run, docs: list[Document]) -> None:
        count, _ = attr.documents_content(docs)
        run.set_attributes({"spanhook.retriever.documents": count})
        record_documents(run, docs)
        run.set_result(docs)

    def invoke(
        self,
        input: str,
        config: Mapping[str, Any] | None = None,
        **request: Unpack[RequestOptions],
    ) -> list[Document]:
        run = self._start(input, self._request(config, **request))
        with run:
            docs = list(self._fetch(input, run))
            self._done(run, docs)
        return docs

    async def ainvoke(
        self,
        input: str,
        config: Mapping[str, Any] | None = None,
        **request: Unpack[RequestOptions],
    ) -> list[Document]:
        run = self._start(input, self._request(config, **request))
        async with run:
            docs = list(await self._aget_relevant_documents(input, run_manager=run))
            self._done(run, docs)
        return docs

    def get_relevant_documents(
        self, query: str, **request: Unpack[RequestOptions]
    ) -> list[Document]:
        return self.invoke(query, **request)

    async def aget_relevant_documents(
        self, query: str, **request: Unpack[RequestOptions]
    ) -> list[Document]:
        return await self.ainvoke(query, **request)


_WORD = re.compile(r"\w+")


class InMemoryRetriever(BaseRetriever):
    """Ranks a fixed list of documents by how many query words they contain."""

    def __init__(
        self,
        documents: Sequence[Document | str],
        *,
        k: int = 4,
        **options: Unpack[PrimitiveOptions],
    ) -> None:
        super().__init__(**options)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.documents = [
            d if isinstance(d, Document) else Document(page_content=d) for d in documents
        ]
        self.k = k

    def _get_relevant_documents(self, query: str, *, run_manager: Run) -> list[Document]:
        words = {w.lower() for w in _WORD.findall(query)}
        scored = []
        for i, d in enumerate(self.documents):
            score = len(words & {w.lower() for w in _WORD.findall(d.page_content)})
            if score:
                scored.append((-score, i, d))
        scored.sort()
        return [d for _, _, d in scored[: self.k]]
