"""What the OpenAI-compatible models share: the SDK import, client construction, retry
policy, usage and server attributes (``pip install 'spanhook[openai]'``).

One LLM span per call: while the SDK call runs, the context carries the key that
OpenLLMetry's OpenAI instrumentation checks before making its own LLM span, so an app that
also instruments the SDK does not get the same call twice. The key is set only around
spanhook's calls: the app's direct SDK calls are still traced, and HTTP client spans still
nest under the run.

Every request carries the W3C ``traceparent`` of the model's run (the application's
configured propagator writes it into ``extra_headers``), so a traced model server (vLLM,
a gateway) joins the trace; ``propagate_trace_context=False`` turns it off. Headers the
caller sets explicitly win.

Retries are spanhook's, not the SDK's: the clients are built with ``max_retries=0`` and the
model's ``max_retries`` re-attempts the call inside the same run, so each retry is an
``on_retry`` event and a ``spanhook.retry`` span event instead of an invisible SDK loop.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypedDict, TypeVar
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate

from spanhook.language_models import usage_metadata as usage_metadata
from spanhook.primitive import PrimitiveOptions, check_options
from spanhook.runtime.spans import SUPPRESS_PROVIDER_SPANS_KEY
from spanhook.tracing import attributes as attr

DEFAULT_BASE_URL = "https://api.openai.com/v1"

T = TypeVar("T")

#: The context key OpenLLMetry's LLM instrumentations check before making a span of their own.


def load_openai() -> Any:
    """The ``openai`` package, or an ImportError saying how to install it."""
    try:
        import openai
    except ImportError as e:  # pragma: no cover - the test extra installs openai
        raise ImportError(
            "spanhook's OpenAI models need the openai package: pip install 'spanhook[openai]'"
        ) from e
    return openai


class ClientConfig:
    """How to reach an OpenAI-compatible server; builds the sync and async SDK clients."""

    def __init__(self, options: Mapping[str, Any], where: str) -> None:
        """From :class:`OpenAIOptions` (``api_key``, ``base_url``, ``organization``,
        ``timeout``, ``default_headers``, ``suppress_provider_spans``,
        ``propagate_trace_context``)."""
        timeout = options.get("timeout", 60.0)
        api_key = options.get("api_key")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValueError(
                f"{where}: timeout must be a positive number of seconds, got {timeout!r}"
            )
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError(
                f"{where} needs an API key: pass api_key=... or set OPENAI_API_KEY "
                "(any non-empty value for a local OpenAI-compatible server)"
            )
        url = options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where}: base_url must be an http(s) URL, got {url!r}")
        self.base_url = url
        self.suppress_provider_spans = options.get("suppress_provider_spans", True)
        self.propagate_trace_context = options.get("propagate_trace_context", True)
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._kwargs: dict[str, Any] = {
            "api_key": key,
            "base_url": url,
            "organization": options.get("organization"),
            "timeout": timeout,
            "max_retries": 0,
            "default_headers": dict(options.get("default_headers") or {}) or None,
        }
        self._sync: Any = None
        self._async: Any = None

    def sync_client(self) -> Any:
        if self._sync is None:
            self._sync = load_openai().OpenAI(**self._kwargs)
        return self._sync

    def async_client(self) -> Any:
        if self._async is None:
            self._async = load_openai().AsyncOpenAI(**self._kwargs)
        return self._async

    def span_attributes(self) -> dict[str, Any]:
        return {attr.SERVER_ADDRESS: self.host, attr.SERVER_PORT: self.port}

    def _traced(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """``body`` with the current trace context in ``extra_headers`` (if propagating)."""
        if not self.propagate_trace_context:
            return body
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if not carrier:
            return body
        return {**body, "extra_headers": {**carrier, **(body.get("extra_headers") or {})}}

    @contextlib.contextmanager
    def _scope(self) -> Iterator[None]:
        """Provider instrumentations' own LLM spans suppressed (if ``suppress_provider_spans``)."""
        if not self.suppress_provider_spans:
            yield
            return
        token = otel_context.attach(otel_context.set_value(SUPPRESS_PROVIDER_SPANS_KEY, True))
        try:
            yield
        finally:
            otel_context.detach(token)

    def call(self, create: Callable[..., Any], body: Mapping[str, Any]) -> Any:
        """``create(**body)`` with the trace context on the request, inside :meth:`_scope`."""
        body = self._traced(body)
        with self._scope():
            return create(**body)

    async def acall(self, create: Callable[..., Awaitable[Any]], body: Mapping[str, Any]) -> Any:
        body = self._traced(body)
        with self._scope():
            return await create(**body)


def retryable(error: Exception) -> bool:
    """Connection failures, timeouts, rate limits and server errors are worth a retry;
    a bad request or a rejected key is not."""
    openai = load_openai()
    retry_types = (
        openai.APIConnectionError,  # includes APITimeoutError
        openai.RateLimitError,
        openai.InternalServerError,
    )
    if isinstance(error, retry_types):
        return True
    status = getattr(error, "status_code", None)
    return isinstance(status, int) and status in (408, 409)


def usage_dict(usage: Any) -> dict[str, int] | None:
    """``token_usage`` (prompt/completion/total tokens) from an SDK usage object."""
    if usage is None:
        return None
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    total = int(getattr(usage, "total_tokens", 0) or (prompt + completion))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def check_sampling(where: str, temperature: float | None, max_tokens: int | None) -> None:
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not 0 <= temperature <= 2
    ):
        raise ValueError(f"{where}: temperature must be between 0 and 2, got {temperature!r}")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ValueError(f"{where}: max_tokens must be a positive int, got {max_tokens!r}")


class OpenAIOptions(TypedDict, total=False):
    """What ``ChatOpenAI`` and ``OpenAI`` take besides the model name and the primitive
    options. ``api_key`` defaults to ``OPENAI_API_KEY``, ``base_url`` to ``OPENAI_BASE_URL``
    (else api.openai.com); ``timeout`` 60 s; ``stream_usage``, ``suppress_provider_spans``
    and ``propagate_trace_context`` default to True."""

    temperature: float | None
    max_tokens: int | None
    api_key: str | None
    base_url: str | None
    organization: str | None
    timeout: float | None
    default_headers: Mapping[str, str] | None
    model_kwargs: Mapping[str, Any] | None
    stream_usage: bool
    suppress_provider_spans: bool
    propagate_trace_context: bool


class OpenAIModelOptions(PrimitiveOptions, OpenAIOptions, total=False):
    """All keyword options of ``ChatOpenAI`` / ``OpenAI`` besides their own parameters."""

    streaming: bool


class OpenAICompatible:
    """What ``ChatOpenAI`` and ``OpenAI`` share; mixed in before their model base class."""

    model_name: str
    temperature: float | None
    max_tokens: int | None
    model_kwargs: dict[str, Any]
    stream_usage: bool
    client: ClientConfig

    def _setup_openai(self, model: str, options: Mapping[str, Any]) -> None:
        where = f"{type(self).__name__}(...)"
        check_options(options, OpenAIModelOptions, f"{type(self).__name__}()")
        if not isinstance(model, str) or not model:
            raise ValueError(f"{where}: model must be a non-empty string, got {model!r}")
        temperature = options.get("temperature")
        max_tokens = options.get("max_tokens")
        check_sampling(where, temperature, max_tokens)
        self.model_name = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.model_kwargs = dict(options.get("model_kwargs") or {})
        self.stream_usage = options.get("stream_usage", True)
        self.client = ClientConfig(options, where)

    # -- what the run records -----------------------------------------------------------------
    def _identifying_params(self) -> dict[str, Any]:
        params = {
            "model_name": self.model_name,
            "model": self.model_name,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            **self.model_kwargs,
        }
        return {k: v for k, v in params.items() if v is not None}

    def _span_attributes(self) -> dict[str, Any]:
        return self.client.span_attributes()

    def _retryable(self, error: Exception) -> bool:
        return retryable(error)

    # -- requests ---------------------------------------------------------------------------
    def _endpoint(self, client: Any) -> Any:
        """The SDK resource whose ``create`` this model calls."""
        raise NotImplementedError

    def _request_body(
        self, stop: list[str] | None, kwargs: Mapping[str, Any], stream: bool
    ) -> dict[str, Any]:
        """The request body besides the messages or prompt (unset sampling options left out;
        the call's keyword arguments win over ``model_kwargs``)."""
        body: dict[str, Any] = {"model": self.model_name}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.model_kwargs)
        if stop:
            body["stop"] = stop
        body.update(kwargs)
        if stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    def _create(self, body: Mapping[str, Any]) -> Any:
        return self.client.call(self._endpoint(self.client.sync_client()).create, body)

    async def _acreate(self, body: Mapping[str, Any]) -> Any:
        return await self.client.acall(self._endpoint(self.client.async_client()).create, body)

    def _events(self, body: Mapping[str, Any], convert: Callable[[Any], T | None]) -> Iterator[T]:
        """The converted events of a streamed request (events that carry nothing skipped);
        the HTTP stream is closed however the iteration ends."""
        stream = self._create(body)
        try:
            for event in stream:
                chunk = convert(event)
                if chunk is not None:
                    yield chunk
        finally:
            stream.close()

    async def _aevents(
        self, body: Mapping[str, Any], convert: Callable[[Any], T | None]
    ) -> AsyncIterator[T]:
        stream = await self._acreate(body)
        try:
            async for event in stream:
                chunk = convert(event)
                if chunk is not None:
                    yield chunk
        finally:
            await stream.close()
