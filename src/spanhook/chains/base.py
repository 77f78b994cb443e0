"""``Chain``: subclass it with ``input_keys``, ``output_keys`` and ``_call(inputs)``.

Every call is a chain run with its own span; request methods are ``__call__``, ``run``,
``invoke``, ``apply``, ``batch``, ``stream`` and their async twins ``acall``, ``arun``,
``ainvoke``, ``aapply``, ``abatch``, ``astream``. Each decision (input and output checks,
the run's start and result) is made once, in shared steps; the twins only call or await.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from spanhook.chains.streaming import astream_chain, stream_chain
from spanhook.flow import in_worker
from spanhook.primitive import (
    NamedTagging,
    Primitive,
    PrimitiveOptions,
    RequestOptions,
    Tagging,
    arun_batch,
    pick,
    run_batch,
    serialized_for,
)
from spanhook.runtime.run import Run, RunKind
from spanhook.runtime.scope import Request
from spanhook.runtime.start import start_run
from spanhook.tracing import attributes as attr
from spanhook.tracing.settings import content_capture_enabled
from spanhook.tracing.signature import accepts

if TYPE_CHECKING:
    from typing_extensions import Unpack

Prepared = tuple[dict[str, Any], Request]


class Chain(Primitive):
    """A step of an application that maps an inputs dict to an outputs dict."""

    input_keys: list[str] = []  # noqa: RUF012 - subclasses override; instances may set their own
    output_keys: list[str] = []  # noqa: RUF012
    _run_kind: RunKind = "chain"
    #: Whether the class keeps the default ``get_name``, ``_span_name`` and
    #: ``_span_attributes`` (computed once per class).
    _plain_naming: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_naming = (
            cls.get_name is Primitive.get_name
            and cls._span_name is Chain._span_name
            and cls._span_attributes is Chain._span_attributes
        )

    def __init__(self, **fields: Any) -> None:
        """Takes the primitive options (``callbacks``, ``tags``, ``metadata``, ``verbose``,
        ``name``) and values for the class's own attributes."""
        self._init_primitive(**pick(fields, PrimitiveOptions))
        for key, value in fields.items():
            if key in PrimitiveOptions.__optional_keys__:
                continue
            if not hasattr(type(self), key):
                raise TypeError(
                    f"{type(self).__name__}() got an unexpected keyword argument {key!r}"
                )
            setattr(self, key, value)

    # -- to implement -------------------------------------------------------------------
    def _call(self, inputs: dict[str, Any], run_manager: Run | None = None) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement _call(inputs)")

    async def _acall(
        self, inputs: dict[str, Any], run_manager: Run | None = None
    ) -> dict[str, Any]:
        return await in_worker(self._invoke_call, inputs, run_manager)

    def _stream_call(self, inputs: dict[str, Any], run: Run) -> Iterator[Any] | None:
        """Chunks of the output while the chain runs, or ``None`` (the default: the chain
        yields its outputs dict once, when done)."""
        return None

    def _astream_call(self, inputs: dict[str, Any], run: Run) -> AsyncIterator[Any] | None:
        return None

    def _stream_outputs(self, chunks: list[Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _span_name(self) -> str:
        return self.get_name()

    def _span_attributes(self) -> dict[str, Any] | None:
        return None

    # -- shared steps (no I/O) ----------------------------------------------------------
    def prep_inputs(self, inputs: Any) -> dict[str, Any]:
        """The inputs dict of a request (a single value for a one-key chain); the keys are
        checked inside the run, so a request missing keys is a run that ends in error."""
        if type(inputs) is dict:
            return dict(inputs)
        if isinstance(inputs, Mapping):
            return dict(inputs)
        keys = self.input_keys
        if len(keys) != 1:
            raise ValueError(
                f"{self.get_name()} takes a dict with keys {keys}; a single value can only be "
                f"passed to a chain with exactly one input key"
            )
        return {keys[0]: inputs}

    def _check_inputs(self, inputs: dict[str, Any]) -> None:
        """Checked inside the run: a request missing input keys is a run that ends in error."""
        for k in self.input_keys:
            if k not in inputs:
                missing = [k for k in self.input_keys if k not in inputs]
                raise ValueError(
                    f"{self.get_name()} is missing input key(s) {missing} (got {sorted(inputs)})"
                )

    def _check_outputs(self, outputs: Any) -> dict[str, Any]:
        if type(outputs) is dict:
            for k in self.output_keys:
                if k not in outputs:
                    break
            else:
                return outputs
        if not isinstance(outputs, Mapping):
            raise TypeError(
                f"{type(self).__name__}._call must return a dict, got {type(outputs).__name__}"
            )
        missing = [k for k in self.output_keys if k not in outputs]
        if missing:
            raise ValueError(
                f"{self.get_name()} did not return output key(s) {missing} (got {sorted(outputs)})"
            )
        return dict(outputs)

    def _start(self, inputs: dict[str, Any], request: Request | None) -> Run:
        run_name = request.run_name if request is not None else None
        if self._plain_naming:  # default hooks, no calls (overhead_breakdown chain_handler)
            name = self.name or type(self).__name__
            span_name = run_name or name
            attributes = None
        else:
            name = self.get_name()
            span_name = run_name or self._span_name()
            attributes = self._span_attributes()
        run = start_run(
            self._run_kind,
            self,
            request,
            name=name,
            span_name=span_name,
            start_args=(serialized_for(self), inputs),
            start_kwargs={"name": run_name or name},
            attributes=attributes,
        )
        if content_capture_enabled():
            run.record_content(attr.INPUT, inputs)
        return run

    def _invoke_call(self, inputs: dict[str, Any], run: Run | None) -> dict[str, Any]:
        for k in self.input_keys:  # _check_inputs, inline (overhead_breakdown chain_handler)
            if k not in inputs:
                self._check_inputs(inputs)
        call = self._call
        if accepts(call, "run_manager"):
            return call(inputs, run_manager=run)
        return call(inputs)

    async def _ainvoke_call(self, inputs: dict[str, Any], run: Run) -> dict[str, Any]:
        self._check_inputs(inputs)
        if accepts(self._acall, "run_manager"):
            return await self._acall(inputs, run_manager=run)
        return await self._acall(inputs)

    def _done(self, run: Run, outputs: Any) -> dict[str, Any]:
        checked: dict[str, Any] = outputs
        if type(outputs) is dict:  # _check_outputs, inline (overhead_breakdown chain_handler)
            for k in self.output_keys:
                if k not in outputs:
                    checked = self._check_outputs(outputs)
        else:
            checked = self._check_outputs(outputs)
        if content_capture_enabled():
            run.record_content(attr.OUTPUT, checked)
        run._end_args = (checked,)  # set_result() inline (overhead_breakdown chain_handler)
        return checked

    @staticmethod
    def _merge(
        inputs: dict[str, Any], outputs: dict[str, Any], return_only_outputs: bool
    ) -> dict[str, Any]:
        return outputs if return_only_outputs else {**inputs, **outputs}

    def _single_output(self, outputs: dict[str, Any], method: str) -> Any:
        if len(self.output_keys) != 1:
            raise ValueError(
                f"{method}() needs a chain with exactly one output key; {self.get_name()} has "
                f"{list(self.output_keys)}: use invoke() instead"
            )
        return outputs[self.output_keys[0]]

    def _run_prepared(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        method: str,
        callbacks: Any,
        tags: Any,
        metadata: Any,
    ) -> Prepared:
        request = self._request(None, callbacks, tags, metadata)
        if args and kwargs:
            raise ValueError(
                f"{method}() takes either one positional input or keyword inputs, not both"
            )
        if len(args) > 1:
            raise ValueError(f"{method}() takes at most one positional input, got {len(args)}")
        if not args and not kwargs:
            raise ValueError(
                f"{method}() needs inputs: {self.get_name()} takes {list(self.input_keys)}"
            )
        prepared = self.prep_inputs(args[0] if args else kwargs)
        if len(self.output_keys) != 1:
            self._single_output({}, method)
        return prepared, request

    def _batch_prepared(
        self, inputs: Sequence[Any], config: Mapping[str, Any] | None, request: Mapping[str, Any]
    ) -> list[Prepared]:
        prepared = [self.prep_inputs(x) for x in inputs]
        requests = self._request(config, **request).per_input(len(prepared))
        return list(zip(prepared, requests, strict=True))

    # -- the one sync and the one async execution ----------------------------------------
    def _execute(self, inputs: dict[str, Any], request: Request | None) -> dict[str, Any]:
        run = self._start(inputs, request)
        with run:
            outputs = self._done(run, self._invoke_call(inputs, run))
        return outputs

    async def _aexecute(self, inputs: dict[str, Any], request: Request | None) -> dict[str, Any]:
        run = self._start(inputs, request)
        async with run:
            outputs = self._done(run, await self._ainvoke_call(inputs, run))
        return outputs

    def _execute_merged(self, pr: Prepared) -> dict[str, Any]:
        return self._merge(pr[0], self._execute(*pr), False)

    async def _aexecute_merged(self, pr: Prepared) -> dict[str, Any]:
        return self._merge(pr[0], await self._aexecute(*pr), False)

    # -- request methods ----------------------------------------------------------------
    def __call__(
        self,
        inputs: Any,
        return_only_outputs: bool = False,
        callbacks: Sequence[Any] | None = None,
        **request: Unpack[NamedTagging],
    ) -> dict[str, Any]:
        req = self._request(None, callbacks, **request)
        prepared = self.prep_inputs(inputs)
        return self._merge(prepared, self._execute(prepared, req), return_only_outputs)

    async def acall(
        self,
        inputs: Any,
        return_only_outputs: bool = False,
        callbacks: Sequence[Any] | None = None,
        **request: Unpack[NamedTagging],
    ) -> dict[str, Any]:
        req = self._request(None, callbacks, **request)
        prepared = self.prep_inputs(inputs)
        return self._merge(prepared, await self._aexecute(prepared, req), return_only_outputs)

    def invoke(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        return_only_outputs: bool = False,
    ) -> dict[str, Any]:
        # Request.from_config without _request()'s keyword check (invoke() cannot pass any)
        # and the cached label without the property's call (overhead_breakdown chain_handler)
        where = self.__dict__.get("_label") or self._request_label
        req = Request.from_config(config, callbacks, tags, metadata, where)
        prepared = self.prep_inputs(input)
        outputs = self._execute(prepared, req)
        # _merge inline (overhead_breakdown chain_handler)
        return outputs if return_only_outputs else {**prepared, **outputs}

    async def ainvoke(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        return_only_outputs: bool = False,
    ) -> dict[str, Any]:
        req = self._request(config, callbacks, tags, metadata)
        prepared = self.prep_inputs(input)
        return self._merge(prepared, await self._aexecute(prepared, req), return_only_outputs)

    def run(
        self,
        *args: Any,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run with one positional input or keyword inputs; return the single output."""
        pr = self._run_prepared(args, kwargs, "run", callbacks, tags, metadata)
        return self._single_output(self._execute(*pr), "run")

    async def arun(
        self,
        *args: Any,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        pr = self._run_prepared(args, kwargs, "arun", callbacks, tags, metadata)
        return self._single_output(await self._aexecute(*pr), "arun")

    def apply(
        self,
        input_list: Sequence[Mapping[str, Any]],
        callbacks: Sequence[Any] | None = None,
        **request: Unpack[Tagging],
    ) -> list[dict[str, Any]]:
        """Run on each inputs dict in turn; return the outputs dicts."""
        req = self._request(None, callbacks, **request)
        return [self._execute(self.prep_inputs(x), req) for x in input_list]

    async def aapply(
        self,
        input_list: Sequence[Mapping[str, Any]],
        callbacks: Sequence[Any] | None = None,
        **request: Unpack[Tagging],
    ) -> list[dict[str, Any]]:
        req = self._request(None, callbacks, **request)
        runs = [self._aexecute(self.prep_inputs(x), req) for x in input_list]
        return list(await asyncio.gather(*runs))

    def batch(
        self,
        inputs: Sequence[Any],
        config: Mapping[str, Any] | None = None,
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        **request: Unpack[RequestOptions],
    ) -> list[Any]:
        """Run on every input in worker threads that carry the current run."""
        work = self._batch_prepared(inputs, config, request)
        limit = self._max_concurrency(config, max_concurrency)
        return run_batch(self._execute_merged, work, limit, return_exceptions)

    async def abatch(
        self,
        inputs: Sequence[Any],
        config: Mapping[str, Any] | None = None,
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        **request: Unpack[RequestOptions],
    ) -> list[Any]:
        work = self._batch_prepared(inputs, config, request)
        limit = self._max_concurrency(config, max_concurrency)
        return await arun_batch(self._aexecute_merged, work, limit, return_exceptions)

    # -- streaming (the bodies are in chains/streaming.py) -----------------------------------
    def stream(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        **request: Unpack[RequestOptions],
    ) -> Iterator[Any]:
        """The chain's chunks (``_stream_call``), or its outputs dict once."""
        return stream_chain(self, input, config, request)

    def astream(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        **request: Unpack[RequestOptions],
    ) -> AsyncIterator[Any]:
        # returns the stream itself: a second async generator layer would be finalized on its
        # own (in another task) when the loop shuts down an abandoned stream
        return astream_chain(self, input, config, request)
