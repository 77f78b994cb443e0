"""Tools: ``Tool(name=, func=, description=)`` and the ``@tool`` decorator.

Every call is a tool run (span ``execute_tool {name}``) delivering ``on_tool_start`` /
``on_tool_end`` / ``on_tool_error`` with langchain-core's arguments.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from spanhook.primitive import LocalOptions, Primitive
from spanhook.runtime.run import Run
from spanhook.runtime.scope import Request
from spanhook.runtime.start import start_run
from spanhook.tracing import attributes as attr

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ToolException(Exception):
    """Raised by a tool to report a failure the agent may recover from: with
    ``handle_tool_error`` set on the tool, the error becomes the tool's result."""


ToolErrorHandler = bool | str | Callable[[ToolException], str]


class Tool(Primitive):
    """A named function an agent (or your code) can call."""

    def __init__(
        self,
        name: str,
        func: Callable[..., Any] | None,
        description: str,
        *,
        coroutine: Callable[..., Awaitable[Any]] | None = None,
        return_direct: bool = False,
        handle_tool_error: ToolErrorHandler = False,
        **options: Unpack[LocalOptions],
    ) -> None:
        """``handle_tool_error``, as in langchain-core: a ``ToolException`` the function
        raises becomes the result (its message for ``True``, the string given, or what the
        callable returns for it), the run ends with ``on_tool_end`` and its span is marked
        ``error.type`` ``tool_error``; ``False`` (the default) lets it propagate."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a tool needs a non-empty name, got {name!r}")
        if func is None and coroutine is None:
            raise ValueError(f"tool {name!r} needs func= or coroutine=")
        if func is not None and not callable(func):
            raise TypeError(f"tool {name!r}: func must be callable, got {type(func).__name__}")
        if not isinstance(description, str):
            raise TypeError(f"tool {name!r}: description must be a str")
        if not isinstance(handle_tool_error, bool | str) and not callable(handle_tool_error):
            raise TypeError(
                f"tool {name!r}: handle_tool_error must be a bool, a str or a callable, "
                f"got {type(handle_tool_error).__name__}"
            )
        self._init_primitive(name=name, **options)
        self.name: str = name
        self.func = func
        self.coroutine = coroutine
        self.description = description
        self.return_direct = return_direct
        self.handle_tool_error = handle_tool_error
        target = func if func is not None else coroutine
        assert target is not None
        params = inspect.signature(target).parameters
        self._params = [
            p.name
            for p in params.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in ("run_manager", "callbacks")
        ]
        self._wants_run = "run_manager" in params
        self._wants_callbacks = "callbacks" in params

    @property
    def args(self) -> dict[str, dict[str, str]]:
        """The tool's parameters, by name."""
        return {p: {"title": p} for p in self._params}

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, description={self.description!r})"

    # -- plumbing ------------------------------------------------------------------------
    def _arguments(
        self, tool_input: str | Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if isinstance(tool_input, Mapping):
            unknown = [k for k in tool_input if k not in self._params]
            if unknown and self._params:
                raise ValueError(
                    f"tool {self.name!r} got unknown argument(s) {unknown}; it takes {self._params}"
                )
            return (), dict(tool_input)
        if isinstance(tool_input, str):
            if len(self._params) > 1:
                raise ValueError(
                    f"tool {self.name!r} takes {len(self._params)} arguments {self._params}: pass a dict"
                )
            return (tool_input,) if self._params else (), {}
        raise TypeError(
            f"tool {self.name!r} input must be a str or a dict, got {type(tool_input).__name__}"
        )

    def _begin(
        self,
        tool_input: str | Mapping[str, Any],
        start_color: str | None,
        tool_call_id: str | None,
        callbacks: Any,
        tags: Any,
        metadata: Any,
        run_name: str | None,
    ) -> tuple[Run, tuple[Any, ...], dict[str, Any]]:
        """The run of a call and the function's arguments (with ``run_manager`` and the
        child ``callbacks`` if the function declares them, as langchain-core passes them)."""
        request = Request(callbacks, tags, metadata, run_name=run_name, where=self._request_label)
        args, kw = self._arguments(tool_input)
        input_str = tool_input if isinstance(tool_input, str) else attr.safe_str(dict(tool_input))
        # langchain-core: ``inputs`` is the dict of a dict input, ``None`` for a string input
        inputs = dict(tool_input) if isinstance(tool_input, Mapping) else None
        attributes: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: "execute_tool",
            attr.GEN_AI_TOOL_NAME: self.name,
            attr.GEN_AI_TOOL_TYPE: "function",
            attr.GEN_AI_TOOL_DESCRIPTION: self.description,
        }
        if tool_call_id:
            attributes[attr.GEN_AI_TOOL_CALL_ID] = tool_call_id
        run = start_run(
            "tool",
            self,
            request,
            name=self.name,
            span_name=f"execute_tool {self.name}",
            start_args=({"name": self.name, "description": self.description}, input_str),
            start_kwargs={
                "inputs": inputs,
                "name": request.run_name,
                "color": start_color,
                "tool_call_id": tool_call_id,
            },
            attributes=attributes,
        )
        run.record_content(attr.GEN_AI_TOOL_CALL_ARGUMENTS, tool_input)
        run.error_kwargs = {**run.error_kwargs, "tool_call_id": tool_call_id}
        if self._wants_run:
            kw["run_manager"] = run
        if self._wants_callbacks:
            kw["callbacks"] = run.get_child()
        return run, args, kw

    def _finish(
        self,
        run: Run,
        output: Any,
        color: str | None,
        tool_call_id: str | None,
        extra: dict[str, Any],
    ) -> None:
        run.record_content(attr.GEN_AI_TOOL_CALL_RESULT, output)
        run.set_result(output, color=color, name=self.name, tool_call_id=tool_call_id, **extra)

    def _handled(self, run: Run, error: ToolException) -> Any:
        """The result standing for ``error`` (re-raised unless ``handle_tool_error``)."""
        handler = self.handle_tool_error
        if handler is False:
            raise error
        if callable(handler):
            output: Any = handler(error)
        elif isinstance(handler, str):
            output = handler
        else:
            output = error.args[0] if error.args else "Tool execution error"
        run.mark_tool_error(output)
        return output

    def _call_func(self, run: Run, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        func = self.func
        assert func is not None
        try:
            return func(*args, **kw)
        except ToolException as e:
            return self._handled(run, e)

    async def _acall_func(self, run: Run, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        try:
            if self.coroutine is not None:
                return await self.coroutine(*args, **kw)
            func = self.func
            assert func is not None
            return await asyncio.to_thread(func, *args, **kw)
        except ToolException as e:
            return self._handled(run, e)

    def run(
        self,
        tool_input: str | Mapping[str, Any],
        verbose: bool | None = None,
        start_color: str | None = "green",
        color: str | None = "green",
        callbacks: Sequence[Any] | None = None,
        *,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call the tool. Extra keywords (e.g. ``observation_prefix``, ``llm_prefix``) are
        passed to ``on_tool_end`` as LangChain's agents do."""
        if self.func is None:
            raise RuntimeError(f"tool {self.name!r} only has a coroutine: call arun()/ainvoke()")
        run, args, kw = self._begin(
            tool_input, start_color, tool_call_id, callbacks, tags, metadata, run_name
        )
        with run:
            output = self._call_func(run, args, kw)
            self._finish(run, output, color, tool_call_id, kwargs)
        return output

    async def arun(
        self,
        tool_input: str | Mapping[str, Any],
        verbose: bool | None = None,
        start_color: str | None = "green",
        color: str | None = "green",
        callbacks: Sequence[Any] | None = None,
        *,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        run, args, kw = self._begin(
            tool_input, start_color, tool_call_id, callbacks, tags, metadata, run_name
        )
        async with run:
            output = await self._acall_func(run, args, kw)
            self._finish(run, output, color, tool_call_id, kwargs)
        return output

    @staticmethod
    def _config_kwargs(config: Mapping[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``run`` arguments from ``config`` and the request's keyword arguments, merged as
        every primitive merges them: callbacks and tags added, metadata updated, an explicit
        ``run_name`` first."""
        cfg = config or {}
        cb = [*(cfg.get("callbacks") or ()), *(kwargs.pop("callbacks", None) or ())]
        tags = [*(cfg.get("tags") or ()), *(kwargs.pop("tags", None) or ())]
        metadata = {**(cfg.get("metadata") or {}), **(kwargs.pop("metadata", None) or {})}
        run_name = kwargs.pop("run_name", None) or cfg.get("run_name")
        return {
            "callbacks": cb or None,
            "tags": tags or None,
            "metadata": metadata or None,
            "run_name": run_name,
            **kwargs,
        }

    def invoke(
        self, input: str | Mapping[str, Any], config: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        return self.run(input, **self._config_kwargs(config, kwargs))

    async def ainvoke(
        self, input: str | Mapping[str, Any], config: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        return await self.arun(input, **self._config_kwargs(config, kwargs))

    def __call__(
        self, tool_input: str | Mapping[str, Any], callbacks: Sequence[Any] | None = None
    ) -> Any:
        return self.run(tool_input, callbacks=callbacks)


@overload
def tool(name_or_func: Callable[..., Any]) -> Tool: ...


@overload
def tool(
    name_or_func: str | None = None,
    *,
    return_direct: bool = False,
    description: str | None = None,
    handle_tool_error: ToolErrorHandler = False,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    name_or_func: str | Callable[..., Any] | None = None,
    *,
    return_direct: bool = False,
    description: str | None = None,
    handle_tool_error: ToolErrorHandler = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a tool: ``@tool`` or ``@tool("name")``; the docstring is the
    description. ``async def`` functions become the tool's coroutine."""

    def make(fn: Callable[..., Any], name: str | None) -> Tool:
        desc = description if description is not None else inspect.getdoc(fn)
        if not desc:
            raise ValueError(
                f"tool {name or fn.__name__!r} needs a description: give the function a docstring"
            )
        is_async = inspect.iscoroutinefunction(fn)
        return Tool(
            name=name or fn.__name__,
            func=None if is_async else fn,
            coroutine=fn if is_async else None,
            description=desc,
            return_direct=return_direct,
            handle_tool_error=handle_tool_error,
        )

    if callable(name_or_func):
        return make(name_or_func, None)
    if name_or_func is not None and not isinstance(name_or_func, str):
        raise TypeError(f"@tool takes a function or a name, got {name_or_func!r}")
    return lambda fn: make(fn, name_or_func)
