"""``Scope.derive``: the scoping rule of DESIGN section 3 as a pure function."""

from __future__ import annotations

from typing import Any

from spanhook.callbacks.base import BaseCallbackHandler
from spanhook.runtime.scope import ROOT, Request, RunDefaults, Scope, derive
from spanhook.tracing.consumers import classify


class H(BaseCallbackHandler):
    def __init__(self, label: str) -> None:
        self.label = label

    def on_chain_start(self, *a: Any, **kw: Any) -> None:
        pass

    def __repr__(self) -> str:
        return self.label


def _defaults(*handlers: Any, tags: tuple[str, ...] = (), metadata: Any = None) -> RunDefaults:
    d = RunDefaults()
    d._consumers = classify(list(handlers), "test")
    d._own_tags = tags
    d._own_metadata = metadata or {}
    return d


def _no_console() -> Any:
    raise AssertionError("verbose consumers built without verbose")


p, q, o = H("parent"), H("request"), H("ctor")
PARENT = Scope((p,), (), ["pt"], {"pm": 1}, False)


def test_run_sees_parent_request_and_constructor_handlers_in_that_order() -> None:
    request = Request(callbacks=[q], tags=["rt"], metadata={"rm": 2})
    own, inherited = derive(PARENT, request, _defaults(o, tags=("ot",), metadata={"om": 3}))
    assert own.handlers == (p, q, o)
    assert own.tags == ["pt", "rt", "ot"]
    assert own.metadata == {"pm": 1, "rm": 2, "om": 3}
    # nested runs inherit the parent's and the request's, not the constructor's
    assert inherited.handlers == (p, q)
    assert inherited.tags == ["pt", "rt"]
    assert inherited.metadata == {"pm": 1, "rm": 2}


def test_nothing_added_shares_the_parent_scope_and_copies_the_containers() -> None:
    own, inherited = derive(PARENT, Request(), RunDefaults(), verbose_consumers=_no_console)
    assert inherited is PARENT
    assert own.handlers == (p,)
    assert own.tags == PARENT.tags and own.tags is not PARENT.tags
    assert own.metadata == PARENT.metadata and own.metadata is not PARENT.metadata


def test_a_handler_present_twice_is_kept_once_at_its_first_place() -> None:
    own, inherited = derive(PARENT, Request(callbacks=[q, p]), _defaults(p, q), (q,))
    assert own.handlers == (p, q)
    assert inherited.handlers == (p, q)


def test_verbose_adds_console_output_to_the_run_and_everything_nested() -> None:
    out, tree = H("stdout"), object()
    defaults = _defaults()
    defaults.verbose = True
    own, inherited = derive(ROOT, Request(), defaults, verbose_consumers=lambda: (out, tree))  # type: ignore[arg-type,return-value]
    assert own.verbose and inherited.verbose
    assert own.handlers == (out,) and inherited.handlers == (out,)
    assert own.processors == (tree,) and inherited.processors == (tree,)
    # already verbose above: nothing added a second time
    again, _ = derive(inherited, Request(), defaults, verbose_consumers=_no_console)
    assert again.handlers == (out,)
