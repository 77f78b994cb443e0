"""``LLMChain``: format a prompt, call a model, return its text."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from spanhook._color import colored
from spanhook.chains.base import Chain
from spanhook.chat_models.base import BaseChatModel
from spanhook.flow import Call, Flow, arun_flow, run_flow
from spanhook.language_models import BaseLanguageModel
from spanhook.primitive import PrimitiveOptions
from spanhook.prompts.base import ChatPromptTemplate, PromptTemplate, PromptValue
from spanhook.runtime.run import Run

if TYPE_CHECKING:
    from typing_extensions import Unpack


class LLMChain(Chain):
    """``LLMChain(llm=..., prompt=...)``: inputs are the prompt's variables, the output is
    ``text`` (or ``output_key``). Emits ``Prompt after formatting:`` as a text event, as
    LangChain does, so ``verbose`` shows the prompt."""

    def __init__(
        self,
        *,
        llm: BaseLanguageModel[Any, Any, Any],
        prompt: PromptTemplate | ChatPromptTemplate,
        output_key: str = "text",
        **options: Unpack[PrimitiveOptions],
    ) -> None:
        super().__init__(**options)
        if not isinstance(llm, BaseLanguageModel):
            raise TypeError(
                f"LLMChain llm must be a spanhook LLM or chat model, got {type(llm).__name__}"
            )
        if not isinstance(prompt, (PromptTemplate, ChatPromptTemplate)):
            raise TypeError(
                f"LLMChain prompt must be a PromptTemplate or ChatPromptTemplate, got {type(prompt).__name__}"
            )
        self.llm = llm
        self.prompt = prompt
        self.output_key = output_key
        self.input_keys = list(prompt.input_variables)
        self.output_keys = [output_key]

    def _format(self, inputs: dict[str, Any]) -> tuple[PromptValue, str]:
        """The prompt value and the text event that shows it (``verbose`` prints it)."""
        values = {k: v for k, v in inputs.items() if k in self.prompt.input_variables}
        prompt_value = self.prompt.format_prompt(**values)
        return prompt_value, "Prompt after formatting:\n" + colored(
            prompt_value.to_string(), "green"
        )

    @staticmethod
    def _text(output: Any) -> str:
        return output.content if hasattr(output, "content") else str(output)

    def _flow(self, inputs: dict[str, Any], run: Run | None) -> Flow[dict[str, Any]]:
        prompt_value, shown = self._format(inputs)
        if run is not None:
            yield Call(run, "on_text", shown, end="\n", verbose=self.verbose)
        output = yield Call(self.llm, "invoke", prompt_value, stop=inputs.get("stop"))
        return {self.output_key: self._text(output)}

    def _call(self, inputs: dict[str, Any], run_manager: Run | None = None) -> dict[str, Any]:
        return run_flow(self._flow(inputs, run_manager))

    async def _acall(
        self, inputs: dict[str, Any], run_manager: Run | None = None
    ) -> dict[str, Any]:
        return await arun_flow(self._flow(inputs, run_manager))

    def _stream_call(self, inputs: dict[str, Any], run: Run) -> Iterator[Any]:
        prompt_value, shown = self._format(inputs)
        run.on_text(shown, end="\n", verbose=self.verbose)
        chunks = self.llm.stream(prompt_value, stop=inputs.get("stop"))
        try:
            for chunk in chunks:
                yield self._chunk_text(chunk)
        finally:
            chunks.close()  # closed with this chain's stream: the model run ends first

    async def _astream_gen(self, inputs: dict[str, Any], run: Run) -> AsyncIterator[Any]:
        prompt_value, shown = self._format(inputs)
        await run.aon_text(shown, end="\n", verbose=self.verbose)
        chunks = self.llm.astream(prompt_value, stop=inputs.get("stop"))
        try:
            async for chunk in chunks:
                yield self._chunk_text(chunk)
        finally:
            # an async generator is not closed by leaving ``async for``: close the model's
            # stream now, so its run ends before this chain's run, not at garbage collection
            await chunks.aclose()

    def _astream_call(self, inputs: dict[str, Any], run: Run) -> AsyncIterator[Any]:
        return self._astream_gen(inputs, run)

    @staticmethod
    def _chunk_text(chunk: Any) -> str:
        if isinstance(chunk, str):
            return chunk
        message = getattr(chunk, "message", None)
        if message is not None:
            return str(message.content)
        return str(getattr(chunk, "text", chunk))

    def _stream_outputs(self, chunks: list[Any]) -> dict[str, Any]:
        return {self.output_key: "".join(chunks)}

    def predict(self, callbacks: Sequence[Any] | None = None, **kwargs: Any) -> str:
        """Format the prompt with ``kwargs`` and return the model's text."""
        return str(self(kwargs, callbacks=callbacks)[self.output_key])

    async def apredict(self, callbacks: Sequence[Any] | None = None, **kwargs: Any) -> str:
        return str((await self.acall(kwargs, callbacks=callbacks))[self.output_key])

    @property
    def is_chat(self) -> bool:
        return isinstance(self.llm, BaseChatModel)
