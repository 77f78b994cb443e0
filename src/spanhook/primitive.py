"""What every primitive (chain, model, tool, agent, retriever) shares: the constructor
options (``callbacks`` / ``tags`` / ``metadata`` / ``verbose`` / ``name``), the parsing of a
request's ``config``, and batch helpers that carry the current run into worker threads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from spanhook.runtime.run import Run
from spanhook.runtime.scope import Request, RunDefaults
from spanhook.tracing.attributes import mask_secrets
from spanhook.tracing.consumers import classify
from spanhook.tracing.signature import accepts
from spanhook.tracing.threads import ContextThreadPoolExecutor

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")
R = TypeVar("R")


class LocalOptions(TypedDict, total=False):
    """Constructor options of every primitive: ``callbacks``, ``tags`` and ``metadata`` are
    local to the object's own runs; ``verbose`` prints its runs and the runs nested in them."""

    callbacks: Sequence[Any] | None
    tags: Sequence[str] | None
    metadata: Mapping[str, Any] | None
    verbose: bool


class PrimitiveOptions(LocalOptions, total=False):
    """:class:`LocalOptions` plus ``name``, which names the object's runs
    (``**options: Unpack[PrimitiveOptions]`` in constructors)."""

    name: str | None


class Tagging(TypedDict, total=False):
    """A request's ``tags`` and ``metadata``: inherited by every run nested in it."""

    tags: Sequence[str] | None
    metadata: Mapping[str, Any] | None


class RequestOptions(Tagging, total=False):
    """A request's ``callbacks``, ``tags`` and ``metadata`` (``**request: Unpack[...]``)."""

    callbacks: Sequence[Any] | None


class NamedTagging(Tagging, total=False):
    """:class:`Tagging` plus ``run_name``, the name of the request's run."""

    run_name: str | None


def call_hook(fn: Callable[..., R], manager: Any, *args: Any, **kwargs: Any) -> R:
    """Call a user-implemented hook, with ``run_manager=manager`` if it declares one (as
    langchain-core passes it)."""
    if accepts(fn, "run_manager"):
        return fn(*args, run_manager=manager, **kwargs)
    return fn(*args, **kwargs)


def hook_result(
    owner: Any, value: Any, kind: type[R], what: str, hook: str, default_runs: str = ""
) -> R:
    """``value``, what ``owner``'s user hook ``hook`` returned, if it is a ``kind``; else a
    ``TypeError`` saying the hook must return ``what``. ``default_runs``: the hook the base
    class's ``hook`` runs when ``owner`` does not implement ``hook`` (the error names it)."""
    if isinstance(value, kind):
        return value
    if default_runs and not owner._implements(hook):
        hook = default_runs
    raise TypeError(f"{type(owner).__name__}.{hook} must return {what}, got {type(value).__name__}")


def pick(options: Mapping[str, Any], typed: Any) -> dict[str, Any]:
    """The entries of ``options`` that the TypedDict ``typed`` declares."""
    keys = typed.__required_keys__ | typed.__optional_keys__
    return {k: v for k, v in options.items() if k in keys}


def check_options(options: Mapping[str, Any], typed: Any, where: str) -> None:
    """Reject keyword arguments that the TypedDict ``typed`` does not declare."""
    unknown = sorted(set(options) - (typed.__required_keys__ | typed.__optional_keys__))
    if unknown:
        raise TypeError(f"{where} got unexpected keyword argument(s) {unknown}")


class Primitive(RunDefaults):
    """Base of chains, models, tools, agents and retrievers."""

    name: str | None = None

    def __init__(self, **options: Unpack[PrimitiveOptions]) -> None:
        self._init_primitive(**options)

    def _init_primitive(
        self,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        verbose: bool = False,
        name: str | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {next(iter(unknown))!r}"
            )
        where = f"{type(self).__name__}(...)"
        self._consumers = classify(callbacks, where)
        if tags is not None and (
            isinstance(tags, str) or not all(isinstance(t, str) for t in tags)
        ):
            raise TypeError(f"tags for {where} must be a list of strings, got {tags!r}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata for {where} must be a dict, got {metadata!r}")
        if not isinstance(verbose, bool):
            raise TypeError(f"verbose for {where} must be True or False, got {verbose!r}")
        self._callbacks_list = list(callbacks) if callbacks else []
        self._own_tags = tuple(tags) if tags else ()
        self._own_metadata = dict(metadata) if metadata else {}
        self.verbose = verbose
        if name is not None:
            self.name = name

    @property
    def callbacks(self) -> list[Any]:
        """The constructor callbacks (local to this object's own runs)."""
        return list(self._callbacks_list)

    @callbacks.setter
    def callbacks(self, value: Sequence[Any] | None) -> None:
        self._consumers = classify(value, f"{type(self).__name__}.callbacks")
        self._callbacks_list = list(value) if value else []

    @property
    def tags(self) -> list[str]:
        return list(self._own_tags)

    @tags.setter
    def tags(self, value: Sequence[str] | None) -> None:
        self._own_tags = tuple(value) if value else ()

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._own_metadata)

    @metadata.setter
    def metadata(self, value: Mapping[str, Any] | None) -> None:
        self._own_metadata = dict(value) if value else {}

    def get_name(self) -> str:
        return self.name or type(self).__name__

    def _request(
        self,
        config: Mapping[str, Any] | None,
        callbacks: Any = None,
        tags: Any = None,
        metadata: Any = None,
        **extra: Any,
    ) -> Request:
        """The one parser of a request's ``config`` dict and keyword arguments."""
        if extra and extra.keys() - {"run_name", "run_id"}:
            unknown = sorted(extra.keys() - {"run_name", "run_id"})
            raise TypeError(f"{self._request_label} got unexpected keyword argument(s) {unknown}")
        return Request.from_config(
            config, callbacks, tags, metadata, where=self._request_label, **extra
        )

    @staticmethod
    def _max_concurrency(config: Mapping[str, Any] | None, explicit: int | None) -> int | None:
        return explicit or (config or {}).get("max_concurrency")

    @property
    def _request_label(self) -> RequestLabel:
        """Names this object's requests in error messages (formatted only on error)."""
        label = self.__dict__.get("_label")
        if label is None:
            label = self.__dict__["_label"] = RequestLabel(self)
        return label


class AsyncRunManager:
    """A run as langchain-core's async run managers present it to ``_astream`` / ``_acall``:
    its events are coroutines (``await run_manager.on_llm_new_token(...)`` calls the run's
    ``aon_llm_new_token``); ``get_sync()`` gives the run itself; anything else is the run's."""

    __slots__ = ("_run",)

    def __init__(self, run: Run) -> None:
        self._run = run

    def get_sync(self) -> Run:
        return self._run

    def __getattr__(self, name: str) -> Any:
        if name == "_run":  # not set yet (e.g. while copying): never recurse
            raise AttributeError(name)
        return getattr(self._run, "a" + name if name.startswith("on_") else name)


class RequestLabel:
    """``"<name> request"``, computed only when an error message needs it."""

    __slots__ = ("owner",)

    def __init__(self, owner: Primitive) -> None:
        self.owner = owner

    def __str__(self) -> str:
        return f"{self.owner.get_name()} request"


def run_batch(
    fn: Callable[[T], R],
    inputs: Sequence[T],
    max_concurrency: int | None = None,
    return_exceptions: bool = False,
) -> list[R | BaseException]:
    """Apply ``fn`` to every input in worker threads that inherit the caller's run."""
    if not inputs:
        return []
    if len(inputs) == 1:
        try:
            return [fn(inputs[0])]
        except Exception as e:
            if return_exceptions:
                return [e]
            raise
    workers = max(1, min(max_concurrency or 8, len(inputs)))
    with ContextThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, x) for x in inputs]
        out: list[R | BaseException] = []
        for f in futures:
            try:
                out.append(f.result())
            except Exception as e:
                if not return_exceptions:
                    raise
                out.append(e)
        return out


async def arun_batch(
    fn: Callable[[T], Awaitable[R]],
    inputs: Sequence[T],
    max_concurrency: int | None = None,
    return_exceptions: bool = False,
) -> list[R | BaseException]:
    """Await ``fn`` on every input concurrently (asyncio tasks inherit the current run)."""
    if max_concurrency is None:
        results = await asyncio.gather(
            *(fn(x) for x in inputs), return_exceptions=return_exceptions
        )
        return list(results)
    sem = asyncio.Semaphore(max_concurrency)

    async def limited(x: T) -> R:
        async with sem:
            return await fn(x)

    results = await asyncio.gather(
        *(limited(x) for x in inputs), return_exceptions=return_exceptions
    )
    return list(results)


def serialized_for(obj: object, **extra: Any) -> dict[str, Any]:
    """The ``serialized`` dict handlers receive: langchain-core's shape for objects that are
    not serializable (``lc``, ``type``, ``id`` = module path + class, ``name``)."""
    cls = type(obj)
    path = _paths.get(cls)
    if path is None:
        path = _paths[cls] = (*cls.__module__.split("."), cls.__name__)
    name = getattr(obj, "name", None) or cls.__name__
    out: dict[str, Any] = {"lc": 1, "type": "not_implemented", "id": list(path), "name": name}
    if extra:
        # Constructor parameters (``kwargs=...``) may hold API keys or auth headers:
        # handlers never see those.
        out.update(mask_secrets(extra))
    return out


_paths: dict[type, tuple[str, ...]] = {}
