"""Scope: which handlers, OTel processors, tags and metadata a run has (DESIGN section 3).

For a run of object O with request consumers Q inside parent P: the run's scope is P's
inherited scope + Q + O's constructor consumers; what nested runs inherit is P's inherited
scope + Q. Tags and metadata follow the same rule; ``verbose`` adds console output for the
run and everything nested in it. :func:`derive` is that rule, as a pure function.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry.sdk.trace import SpanProcessor

from spanhook.callbacks.stdout import StdOutCallbackHandler
from spanhook.runtime.dispatch import is_classic_handler
from spanhook.tracing.console import SpanTreePrinter
from spanhook.tracing.consumers import EMPTY, Consumers, classify, merge


def check_tags_metadata(tags: object, metadata: object, where: object) -> None:
    """``TypeError`` unless ``tags`` is a list of strings and ``metadata`` a dict (or None)."""
    if tags is not None and (
        isinstance(tags, str) or not all(isinstance(t, str) for t in tags)  # type: ignore[attr-defined]
    ):
        raise TypeError(f"tags for {where} must be a list of strings, got {tags!r}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata for {where} must be a dict, got {metadata!r}")


class Request:
    """What a request method was given: ``callbacks``, ``tags``, ``metadata``, ``run_name``,
    ``run_id``. Inherited by every run nested in the request."""

    __slots__ = ("consumers", "metadata", "run_id", "run_name", "tags")

    def __init__(
        self,
        callbacks: object = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        where: object = "the request",
    ) -> None:
        self.consumers = classify(callbacks, where)
        check_tags_metadata(tags, metadata, where)
        if run_id is not None and not isinstance(run_id, uuid.UUID):
            raise TypeError(f"run_id for {where} must be a uuid.UUID, got {run_id!r}")
        self.tags: tuple[str, ...] = tuple(tags) if tags else ()
        self.metadata: Mapping[str, Any] = metadata or {}
        self.run_name = run_name
        self.run_id = run_id

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | None,
        callbacks: object = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        where: object = "the request",
        **extra: Any,
    ) -> Request:
        """Merge a LangChain-style ``config`` dict with explicit keyword arguments."""
        if config is None:
            if tags is None and metadata is None and not extra:
                if callbacks is None:
                    return NO_REQUEST
                if type(callbacks) is list:
                    # callbacks=[...] alone: nothing else to check. (Not cached: a cache would
                    # keep per-request handlers, and what they hold, alive.)
                    request = object.__new__(cls)
                    request.consumers = classify(callbacks, where)
                    request.tags, request.metadata = (), _NO_METADATA
                    request.run_name = request.run_id = None
                    return request
            return cls(callbacks, tags, metadata, where=where, **extra)
        if not isinstance(config, Mapping):
            raise TypeError(f"config for {where} must be a dict, got {config!r}")
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise TypeError(f"config for {where} has unknown keys {sorted(unknown)}")
        cb = list(config.get("callbacks") or []) + list(callbacks or [])  # type: ignore[call-overload]
        tg = list(config.get("tags") or []) + list(tags or [])
        md = {**(config.get("metadata") or {}), **(metadata or {})}
        return cls(
            cb or None,
            tg or None,
            md or None,
            run_name=extra.get("run_name") or config.get("run_name"),
            run_id=extra.get("run_id") or config.get("run_id"),
            where=where,
        )

    def per_input(self, n: int) -> list[Request]:
        """The request of each of ``n`` runs started by one batch call. A ``run_id`` names one
        run: the first input's (as in langchain-core, with the same warning); the others get
        fresh ids, never a duplicate."""
        if self.run_id is None or n <= 1:
            return [self] * n
        warnings.warn(
            f"run_id {self.run_id} is used only for the first of the {n} inputs of this batch; "
            "the other runs get new ids",
            stacklevel=3,
        )
        rest = copy.copy(self)
        rest.run_id = None
        return [self] + [rest] * (n - 1)


_CONFIG_KEYS = frozenset(
    [
        "callbacks",
        "tags",
        "metadata",
        "run_name",
        "run_id",
        "max_concurrency",
        "configurable",
        "recursion_limit",
    ]
)
_NO_METADATA: Mapping[str, Any] = {}
NO_REQUEST = Request()


class RunDefaults:
    """What a primitive contributes to its own runs: constructor consumers, tags, metadata,
    verbose. Primitives inherit from this."""

    _consumers: Consumers = EMPTY
    _own_tags: tuple[str, ...] = ()
    _own_metadata: Mapping[str, Any] = {}
    verbose: bool = False


class Scope(NamedTuple):
    """Handlers, processors, tags, metadata and ``verbose`` of a run (or of what its nested
    runs inherit). A tuple: built in one C call per run, never changed (a derived scope is a
    new object)."""

    handlers: tuple[Any, ...]
    processors: tuple[SpanProcessor, ...]
    tags: list[str]
    metadata: dict[str, Any]
    verbose: bool


_new_scope = tuple.__new__  # Scope(...) without the generated Python __new__ (hot path)
ROOT = Scope((), (), [], {}, False)


def verbose_consumers() -> tuple[Any, SpanProcessor]:
    """What ``verbose=True`` adds: the stdout handler and the span-tree printer."""
    return StdOutCallbackHandler(), SpanTreePrinter()


def derive(
    parent: Scope,
    request: Request,
    defaults: RunDefaults,
    scoped: tuple[Any, ...] = (),
    verbose_consumers: Callable[[], tuple[Any, SpanProcessor]] = verbose_consumers,
) -> tuple[Scope, Scope]:
    """The scope of a run of ``defaults``' object called with ``request`` inside a run whose
    children inherit ``parent`` (plus ``scoped``, from :func:`handlers_in_scope`), and the
    scope its own nested runs inherit: ``(own, inherited)``.

    Each run gets tags and metadata containers of its own: a handler that changes them in
    place changes nothing for the parent, its siblings or the span.
    """
    ih, ip, itags, imeta, verbose = parent
    rc = request.consumers
    if not (scoped or request.tags or request.metadata or defaults.verbose):
        # The common request (callbacks at most): one test, not five
        # (overhead_breakdown chain_handler).
        if rc is EMPTY:
            inherited = parent
        else:
            ih = merge(ih, rc.handlers) if ih else rc.handlers
            ip = merge(ip, rc.processors) if ip else rc.processors
            inherited = _new_scope(Scope, (ih, ip, itags, imeta, verbose))
    else:
        inherited = _derive_inherited(parent, request, defaults, scoped, verbose_consumers)
        ih, ip, itags, imeta, verbose = inherited
    oc = defaults._consumers
    own_tags = defaults._own_tags
    own_meta = defaults._own_metadata
    own: Scope = _new_scope(
        Scope,
        (
            merge(ih, oc.handlers) if oc.handlers else ih,
            merge(ip, oc.processors) if oc.processors else ip,
            itags + [t for t in own_tags if t not in itags] if own_tags else itags[:],
            {**imeta, **own_meta} if own_meta else {**imeta},
            verbose,
        ),
    )
    return own, inherited


def _derive_inherited(
    parent: Scope,
    request: Request,
    defaults: RunDefaults,
    scoped: tuple[Any, ...],
    verbose_consumers: Callable[[], tuple[Any, SpanProcessor]],
) -> Scope:
    """What the nested runs of a run inherit, when its request adds more than callbacks."""
    ih, ip, itags, imeta, verbose = parent
    changed = False
    if scoped:
        ih, changed = merge(ih, scoped), True
    rc = request.consumers
    if rc is not EMPTY:
        ih = merge(ih, rc.handlers) if ih else rc.handlers
        ip = merge(ip, rc.processors) if ip else rc.processors
        changed = True
    if request.tags:
        itags, changed = itags + [t for t in request.tags if t not in itags], True
    if request.metadata:
        imeta, changed = {**imeta, **request.metadata}, True
    if defaults.verbose and not verbose:
        verbose = changed = True
        out, tree = verbose_consumers()
        if not any(isinstance(h, StdOutCallbackHandler) for h in ih):
            ih = (*ih, out)
        ip = (*ip, tree)
    return _new_scope(Scope, (ih, ip, itags, imeta, verbose)) if changed else parent


#: Handlers added to every run started in this context (and inherited by its nested runs),
#: e.g. by ``get_usage_callback()``. Read once per run; set with :func:`handlers_in_scope`.
SCOPED_HANDLERS: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "spanhook_scoped_handlers", default=()
)


@contextlib.contextmanager
def handlers_in_scope(*handlers: Any) -> Iterator[None]:
    """Add ``handlers`` to every run started inside the ``with`` block (in this thread or
    task, and in threads/tasks that carry its context), like request callbacks."""
    for h in handlers:
        if not is_classic_handler(h):
            raise TypeError(f"handlers_in_scope() takes callback handlers, got {h!r}")
    token = SCOPED_HANDLERS.set(merge(SCOPED_HANDLERS.get(), handlers))
    try:
        yield
    finally:
        SCOPED_HANDLERS.reset(token)
