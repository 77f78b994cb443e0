"""Handler base classes with exactly the methods of langchain-core's ``BaseCallbackHandler``.

Every method is a no-op by default except ``on_chat_model_start``, which raises
``NotImplementedError`` so that the bridge falls back to ``on_llm_start`` with the messages
rendered as prompts, as langchain-core does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from spanhook.schema import (
        AgentAction,
        AgentFinish,
        BaseMessage,
        Document,
        GenerationChunk,
        LLMResult,
        RetryState,
    )
    from spanhook.schema.outputs import ChatGenerationChunk


class BaseCallbackHandler:
    """Subclass and override the events you care about.

    Where each event runs: in a sync run, in the run's own thread, while the run's span is
    current (start and in-run events) or just before it ends (end and error events). In an
    async run, on the event loop if ``run_inline`` is set (then it must not block), otherwise
    on this handler object's own worker thread, one event after the other, with the run's
    context. An event returns before the run goes on, so a handler sees each run's events in
    order. An exception is logged and the run goes on, unless ``raise_error`` is set.
    """

    raise_error: bool = False
    run_inline: bool = False

    @property
    def ignore_llm(self) -> bool:
        return False

    @property
    def ignore_retry(self) -> bool:
        return False

    @property
    def ignore_chain(self) -> bool:
        return False

    @property
    def ignore_agent(self) -> bool:
        return False

    @property
    def ignore_retriever(self) -> bool:
        return False

    @property
    def ignore_chat_model(self) -> bool:
        return False

    @property
    def ignore_custom_event(self) -> bool:
        return False

    # -- LLM / chat model -------------------------------------------------------------
    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A model run started; ``prompts`` holds the one prompt of this run."""

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A chat model run started. Not implemented: the bridge then calls ``on_llm_start``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement on_chat_model_start")

    def on_llm_new_token(
        self,
        token: str,
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A streamed token arrived (called before the token is yielded to the caller)."""

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A model run ended."""

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A model run failed; ``response`` carries the partial generations."""

    # -- chains -----------------------------------------------------------------------
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A chain (or agent) run started."""

    def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A chain run ended."""

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A chain run failed."""

    # -- tools ------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A tool run started."""

    def on_tool_end(
        self,
        output: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """A tool run ended."""

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """A tool run failed."""

    # -- retrievers -------------------------------------------------------------------
    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A retriever run started."""

    def on_retriever_end(
        self,
        documents: Sequence[Document],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """A retriever run ended."""

    def on_retriever_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """A retriever run failed."""

    # -- events inside a run ----------------------------------------------------------
    def on_agent_action(
        self,
        action: AgentAction,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """An agent chose an action."""

    def on_agent_finish(
        self,
        finish: AgentFinish,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """An agent produced its final answer."""

    def on_text(
        self,
        text: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """Arbitrary text from a run (e.g. ``Prompt after formatting:``)."""

    def on_retry(
        self,
        retry_state: RetryState,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        """A run is about to retry."""

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A custom event dispatched from inside a run."""


class AsyncCallbackHandler(BaseCallbackHandler):
    """Handler whose events are coroutines; awaited in async runs.

    Override events with ``async def``. In a sync run, coroutines are run to completion on
    spanhook's handler loop before the run goes on, so events still arrive in order.
    """

    async def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any
    ) -> None:
        """A model run started."""

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement on_chat_model_start")

    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        """A streamed token arrived."""

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        """A model run ended."""

    async def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        """A model run failed."""

    async def on_chain_start(
        self, serialized: dict[str, Any], inputs: dict[str, Any], **kwargs: Any
    ) -> None:
        """A chain run started."""

    async def on_chain_end(self, outputs: dict[str, Any], **kwargs: Any) -> None:
        """A chain run ended."""

    async def on_chain_error(self, error: BaseException, **kwargs: Any) -> None:
        """A chain run failed."""

    async def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, **kwargs: Any
    ) -> None:
        """A tool run started."""

    async def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        """A tool run ended."""

    async def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        """A tool run failed."""

    async def on_retriever_start(
        self, serialized: dict[str, Any], query: str, **kwargs: Any
    ) -> None:
        """A retriever run started."""

    async def on_retriever_end(self, documents: Sequence[Document], **kwargs: Any) -> None:
        """A retriever run ended."""

    async def on_retriever_error(self, error: BaseException, **kwargs: Any) -> None:
        """A retriever run failed."""

    async def on_agent_action(self, action: AgentAction, **kwargs: Any) -> None:
        """An agent chose an action."""

    async def on_agent_finish(self, finish: AgentFinish, **kwargs: Any) -> None:
        """An agent finished."""

    async def on_text(self, text: str, **kwargs: Any) -> None:
        """Arbitrary text from a run."""

    async def on_retry(self, retry_state: RetryState, **kwargs: Any) -> None:
        """A run is about to retry."""

    async def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        """A custom event."""
