"""Retrievers: implement ``_get_relevant_documents(query, *, run_manager)``."""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Mapping, Sequence
from typing import Any

from spanhook.primitive import Primitive, serialized_for
from spanhook.schema import Document
from spanhook.tracing import attributes as attr
from spanhook.tracing.run import Request, Run, start_run
from spanhook.tracing.signature import accepts


class BaseRetriever(Primitive):
    """Finds documents for a query. Every call is a retriever run."""

    def __init__(
        self,
        *,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        verbose: bool = False,
        name: str | None = None,
    ) -> None:
        self._init_primitive(callbacks, tags, metadata, verbose, name)

    def _get_relevant_documents(self, query: str, *, run_manager: Run) -> list[Document]:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _get_relevant_documents(query, *, run_manager)"
        )

    async def _aget_relevant_documents(self, query: str, *, run_manager: Run) -> list[Document]:
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: ctx.run(self._fetch, query, run_manager)
        )

    def _fetch(self, query: str, run: Run) -> list[Document]:
        if accepts(self._get_relevant_documents, "run_manager"):
            return self._get_relevant_documents(query, run_manager=run)
        return self._get_relevant_documents(query)  # type: ignore[call-arg]

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
        count, content = attr.documents_content(docs)
        run.set_attributes({"spanhook.retriever.documents": count})
        run.record_content(attr.OUTPUT, content)
        run.set_result(docs)

    def invoke(
        self,
        input: str,
        config: Mapping[str, Any] | None = None,
        *,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        request = Request.from_config(config, callbacks, tags, metadata, where=self._request_label)
        run = self._start(input, request)
        with run:
            docs = list(self._fetch(input, run))
            self._done(run, docs)
        return docs

    async def ainvoke(
        self,
        input: str,
        config: Mapping[str, Any] | None = None,
        *,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        request = Request.from_config(config, callbacks, tags, metadata, where=self._request_label)
        run = self._start(input, request)
        async with run:
            docs = list(await self._aget_relevant_documents(input, run_manager=run))
            self._done(run, docs)
        return docs

    def get_relevant_documents(
        self,
        query: str,
        *,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        return self.invoke(query, callbacks=callbacks, tags=tags, metadata=metadata)

    async def aget_relevant_documents(
        self,
        query: str,
        *,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        return await self.ainvoke(query, callbacks=callbacks, tags=tags, metadata=metadata)


_WORD = re.compile(r"\w+")


class InMemoryRetriever(BaseRetriever):
    """Ranks a fixed list of documents by how many query words they contain."""

    def __init__(self, documents: Sequence[Document | str], *, k: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
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
