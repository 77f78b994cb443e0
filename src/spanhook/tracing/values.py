"""Any Python value as bounded, valid, secret-free text for a span attribute.

Whatever the application hands over (cyclic or 10,000-level structures, 50 MB strings,
bytes, NaN, non-string keys, objects whose ``__repr__`` or ``model_dump`` raise, strings
with lone surrogates), :func:`render` returns a string of at most ``limit`` characters that
encodes as UTF-8, and never raises. Structured values become JSON (still parseable when cut:
strings are shortened inside it, each cut marked ``...[truncated, N chars]``); what could not
be rendered becomes a bracketed marker saying why. The walk is bounded by ``limit``, not by
the size of the value.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import json
import math
import pathlib
import uuid
from collections.abc import Mapping
from typing import Any

from spanhook._color import ANSI_ESCAPE
from spanhook.tracing.secrets import (
    CIRCULAR,
    MASK,
    MAX_DEPTH,
    TOO_DEEP,
    is_secret_name,
    mask_text,
    may_hold_credentials,
    secret_entry,
    secret_pair,
)

#: Text looked at around a cut, so that a credential straddling the cut is still masked.
_MASK_WINDOW = 512
#: Longest key of a rendered mapping.
MAX_KEY_LENGTH = 256
_SHORT_MARKER = "...[cut]"
_SEQUENCES = (list, tuple, set, frozenset, collections.deque)
_AS_TEXT = (uuid.UUID, datetime.date, datetime.time, datetime.timedelta, decimal.Decimal)
_INT_BITS = 4000  # ints past this have no decimal rendering in Python (str_digits limit)


def valid_utf8(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (OTLP needs valid UTF-8)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def truncate(text: str, limit: int, full: int | None = None) -> str:
    """``text`` cut to ``limit`` characters, ending in a marker saying how long it was
    (``full`` characters, if it had already been cut before)."""
    size = len(text) if full is None else full
    if len(text) <= limit and size == len(text):
        return text
    marker = f"...[truncated, {size} chars]"
    if len(marker) > limit:
        marker = _SHORT_MARKER if len(_SHORT_MARKER) <= limit else ""
    return text[: max(0, limit - len(marker))] + marker


class Marker(str):
    """Text standing for what was left out (``[3 more items]``): never shortened itself."""

    __slots__ = ()


class _Cut(str):
    """A string already cut by the walk, remembering its full length for the marker."""

    full: int


def _plain(text: str, limit: int) -> bool:
    """Whether ``text`` needs no cleaning: short, ASCII, no colour code, no credential."""
    return (
        len(text) <= limit
        and text.isascii()
        and "\x1b" not in text
        and not may_hold_credentials(text)
    )


def clean_text(text: str, limit: int) -> str:
    """Plain text for a span: colour codes removed, URL credentials masked, lone surrogates
    replaced, at most ``limit`` characters (cut at the end, marked)."""
    if _plain(text, limit):
        return text
    out, cut = _clean(text, limit)
    return truncate(out, limit, len(text)) if cut else out


def _clean(text: str, limit: int) -> tuple[str, bool]:
    """Cleaned ``text`` shortened to ``limit`` characters (not marked), and whether it was cut.
    Only a window past ``limit`` is looked at, so a 50 MB string costs no more than a short one.
    """
    cut = len(text) > limit + _MASK_WINDOW
    if cut:
        text = text[: limit + _MASK_WINDOW]
    if "\x1b" in text:
        text = ANSI_ESCAPE.sub("", text)
    text = valid_utf8(mask_text(text))
    if len(text) > limit:
        return text[:limit], True
    return text, cut


def safe_repr(value: object) -> str:
    """``repr(value)``, or a marker if that raises."""
    try:
        text = repr(value)
        return text if type(text) is str else str.__str__(text)
    except Exception as e:
        return f"[unrenderable {_type_name(value)}: __repr__ raised {_type_name(e)}]"


def safe_str(value: object) -> str:
    """``str(value)``, falling back to :func:`safe_repr` if that raises."""
    try:
        text = str(value)
        return text if type(text) is str else str.__str__(text)
    except Exception:
        return safe_repr(value)


def _type_name(value: object) -> str:
    try:
        return str(type(value).__qualname__)
    except Exception:
        return "object"


class _Walk:
    """One rendering: the per-string cap, the remaining node budget, the current path."""

    __slots__ = ("budget", "cap", "path")

    def __init__(self, cap: int, budget: int) -> None:
        self.cap = cap
        self.budget = budget
        self.path: set[int] = set()

    def text(self, text: str, charged: bool = False) -> str:
        size = len(text)
        if not charged:
            self.budget -= 4 + min(size, self.cap) // 8
            if _plain(text, self.cap):
                return text
        out, was_cut = _clean(text, self.cap)
        if not was_cut:
            return out
        cut = _Cut(out)
        cut.full = size
        return cut

    def key(self, key: object) -> str:
        if type(key) is str:
            text = key
        else:
            rendered = self.value(key, MAX_DEPTH - 1)
            text = rendered if isinstance(rendered, str) else _dumps(rendered)
        return clean_text(text, MAX_KEY_LENGTH)

    def value(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            self.budget -= 4 + min(len(value), self.cap) // 8
            return value if _plain(value, self.cap) else self.text(value, charged=True)
        if value is None or kind is bool:
            self.budget -= 4
            return value
        if kind is int or kind is float:
            return self.number(value)
        if kind is Marker:
            return value
        if isinstance(value, str):
            return self.text(str.__str__(value))
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return self.number(int.__index__(value))
        if isinstance(value, float):
            return self.number(float.__float__(value))
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.text(_bytes_text(value))
        if depth >= MAX_DEPTH:
            self.budget -= 8
            return Marker(TOO_DEEP)
        ident = id(value)
        if ident in self.path:
            self.budget -= 8
            return Marker(CIRCULAR)
        self.path.add(ident)
        try:
            return self.container(value, depth)
        except Exception as e:  # a mapping or object that fails while it is read
            return self.text(f"[unrenderable {_type_name(value)}: {_type_name(e)}]")
        finally:
            self.path.discard(ident)

    def number(self, value: float) -> Any:
        self.budget -= 8
        if type(value) is float and not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        if type(value) is int and value.bit_length() > _INT_BITS:
            return f"[int of {value.bit_length()} bits]"
        return value

    def container(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is dict:
            return self.mapping(value, depth)
        if kind is list:
            return self.sequence(value, depth)
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        fields = getattr(value, "_fields", None) if isinstance(value, tuple) else None
        if isinstance(fields, tuple):  # a named tuple
            return self.mapping(dict(zip(fields, value, strict=False)), depth)
        if isinstance(value, _SEQUENCES):
            if secret_pair(value):
                return [self.text(str(value[0])), MASK]  # type: ignore[index]
            return self.sequence(value, depth)
        if isinstance(value, type):
            return self.text(safe_repr(value))
        if dataclasses.is_dataclass(value):
            fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
            return self.mapping(fields, depth)
        dump = _method(value, "model_dump")
        if dump is not None:
            try:
                dumped = dump()
            except Exception as e:
                return self.text(f"[unrenderable {_type_name(value)}: {_type_name(e)} in dump]")
            return self.value(dumped, depth + 1)
        if isinstance(value, (*_AS_TEXT, pathlib.PurePath)):
            return self.text(safe_str(value))
        return self.text(safe_repr(value))

    def mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        self.budget -= 4
        masked_value = secret_entry(value)
        out: dict[str, Any] = {}
        for n, (k, v) in enumerate(value.items()):
            if self.budget <= 0:
                out["..."] = Marker(more(value, n, "entries"))
                break
            key = k if type(k) is str and _plain(k, MAX_KEY_LENGTH) else self.key(k)
            secret = is_secret_name(key) or (masked_value and k == "value")
            out[key] = MASK if secret else self.value(v, depth + 1)
        return out

    def sequence(self, value: Any, depth: int) -> list[Any]:
        self.budget -= 4
        out: list[Any] = []
        for n, item in enumerate(value):
            if self.budget <= 0:
                out.append(Marker(more(value, n, "items")))
                break
            out.append(self.value(item, depth + 1))
        return out


def key_text(key: object) -> str:
    """A mapping key of any type as text (at most ``MAX_KEY_LENGTH`` characters)."""
    try:
        return _Walk(MAX_KEY_LENGTH, 64).key(key)
    except Exception as e:
        return f"[unrenderable key: {_type_name(e)}]"


def _method(value: object, name: str) -> Any:
    try:
        method = getattr(value, name, None)
    except Exception:
        return None
    return method if callable(method) else None


def more(value: Any, shown: int, what: str) -> str:
    """The marker standing for the items of ``value`` past the first ``shown``."""
    try:
        return f"[{len(value) - shown} more {what}]"
    except Exception:
        return f"[more {what}]"


def _bytes_text(value: bytes | bytearray | memoryview) -> str:
    try:
        data = bytes(value[:64])
        return f"[{len(value)} bytes] {data!r}{'...' if len(value) > 64 else ''}"
    except Exception as e:
        return f"[unreadable bytes: {_type_name(e)}]"


def _shorten(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        if type(value) is Marker:
            return value
        return truncate(value, cap, getattr(value, "full", None))
    if isinstance(value, dict):
        return {k: _shorten(v, cap) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, cap) for v in value]
    return value


def _longest(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((_longest(v) for v in value), default=0)
    return 0


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


def _fit(data: Any, limit: int) -> str | None:
    """``data`` as JSON with its strings cut just enough to fit ``limit`` (``None``: even
    cutting every string to its marker does not fit)."""
    lo, hi, best = 0, _longest(data), None
    while lo <= hi:  # the largest per-string cap that fits
        cap = (lo + hi) // 2
        candidate = _dumps(_shorten(data, cap))
        if len(candidate) <= limit:
            best, lo = candidate, cap + 1
        else:
            hi = cap - 1
    return best


def render(value: Any, limit: int) -> str:
    """``value`` as span text of at most ``limit`` characters: a string as itself (cleaned,
    cut at the end), anything else as JSON (secrets masked, shortened inside its strings so
    that it stays valid JSON). Never raises."""
    limit = max(1, limit)
    try:
        if isinstance(value, str):
            return clean_text(value if type(value) is str else str.__str__(value), limit)
        budget = max(64, limit)
        while True:
            data = _Walk(limit, budget).value(value, 0)
            if type(data) is _Cut:
                return truncate(data, limit, data.full)
            text = _dumps(data)
            if len(text) <= limit:
                return text
            fitted = _fit(data, limit)
            if fitted is not None:
                return fitted
            if budget <= 16:
                return truncate(text, limit)
            budget //= 4
    except Exception as e:  # e.g. RecursionError when called at the edge of the stack
        return truncate(f"[unrenderable {_type_name(value)}: {_type_name(e)}]", limit)
