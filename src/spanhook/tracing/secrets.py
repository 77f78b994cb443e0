"""Secret masking: which names hold secrets, masking them in payloads handed to handlers,
and credentials written inside text (``https://user:pass@host``, ``?api_key=...``)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from spanhook._state import STATE

_SECRET_NAME = re.compile(
    r"(api[_-]?key|apikey|secret|password|passwd|authorization|auth[_-]?token|access[_-]?token|"
    r"bearer|credential|private[_-]?key|^token$|_token$|cookie)",
    re.IGNORECASE,
)
MASK = "***"
_NOT_SECRET = frozenset(("max_tokens", "max_completion_tokens", "max_new_tokens", "tokens"))

#: Longest text taken for a parameter or header name.
MAX_NAME_LENGTH = 128
_secret_names = STATE.secret_names


def is_secret_name(name: str) -> bool:
    """Whether a parameter or header name holds a secret (``api_key``, ``Authorization``...)."""
    if len(name) > MAX_NAME_LENGTH:
        return False  # text, not a name (and never a 50 MB cache key)
    known = _secret_names.get(name)
    if known is None:
        known = name.lower() not in _NOT_SECRET and _SECRET_NAME.search(name) is not None
        if len(_secret_names) < 4096:
            _secret_names[name] = known
    return known


def is_secret_key(key: object) -> bool:
    """Whether a mapping key (of any type) names a secret."""
    return isinstance(key, str) and is_secret_name(key)


def secret_pair(value: object) -> bool:
    """Whether ``value`` is a ``(name, value)`` pair whose name is a secret (header lists)."""
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and isinstance(value[0], str)
        and is_secret_name(value[0])
    )


def secret_entry(value: Mapping[Any, Any]) -> bool:
    """Whether a mapping is a ``{"name": "Authorization", "value": ...}`` header entry."""
    if "value" not in value:
        return False
    name = value.get("name", value.get("key"))
    return isinstance(name, str) and is_secret_name(name)


# ``scheme://user:password@host``: the whole user-info goes.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,31}://)[^\s/?#@]{1,256}@")
# ``?api_key=...`` / ``&token=...`` in a URL or a query string.
_QUERY_SECRET = re.compile(r"([?&;][^=&;#\s?]{1,64}=)([^&;#\s]*)")
# ``name: value`` / ``name=value`` / ``'name': 'value'`` / ``('name', 'value')`` in text
# (logs, reprs, query strings, headers formatted into a prompt): the value goes if the name
# is a secret's. An unquoted value stops at delimiters, so ``Cfg(api_key='x')`` is seen too.
_VALUE = r"""("[^"\n]{0,4096}"|'[^'\n]{0,4096}'|(?i:bearer|basic|token)\s+[^\s,;&'"})\]]+|[^\s,;&'"})\](=:]+)"""
_TEXT_PAIR = re.compile(
    r"""(?<![\w.-])([A-Za-z_][\w.-]{0,63})(['"]?)(\s*[:=]\s*|\s*,\s*(?=['"]))""" + _VALUE
)
# ``{'name': 'X-Api-Key', 'value': '...'}`` written out as text.
_TEXT_ENTRY = re.compile(
    r"""(['"]?)(?:name|key)\1\s*[:=]\s*(['"])([\w.-]{1,64})\2\s*,\s*(['"]?value['"]?\s*[:=]\s*)"""
    + _VALUE
)


def _query_param(match: re.Match[str]) -> str:
    name = match.group(1)[1:-1]
    return match.group(1) + MASK if is_secret_name(name) else match.group(0)


def _masked_value(value: str) -> str:
    return value[0] + MASK + value[0] if value[:1] in ("'", '"') else MASK


def _text_pair(match: re.Match[str]) -> str:
    if not is_secret_name(match.group(1)):
        return match.group(0)
    return "".join(match.group(1, 2, 3)) + _masked_value(match.group(4))


def _text_entry(match: re.Match[str]) -> str:
    if not is_secret_name(match.group(3)):
        return match.group(0)
    return match.group(0)[: match.start(5) - match.start(0)] + _masked_value(match.group(5))


def may_hold_credentials(text: str) -> bool:
    """Whether :func:`mask_text` could change ``text`` (a cheap test first)."""
    return "@" in text or "=" in text or ":" in text or "', " in text or '", ' in text


def mask_text(text: str) -> str:
    """``text`` with credentials written in it masked: the user-info of
    ``scheme://user:pass@host``, and the value after a secret's name in ``name: value``,
    ``name=value``, ``'name': 'value'``, ``('name', 'value')`` shapes (``?api_key=...``,
    ``Authorization: Bearer ...``, a dict or a model's repr formatted into a prompt)."""
    if "@" in text:
        text = _URL_USERINFO.sub(r"\1" + MASK + "@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(_query_param, text)
    if "=" in text or ":" in text or "', " in text or '", ' in text:
        text = _TEXT_PAIR.sub(_text_pair, text)
        if "value" in text:
            text = _TEXT_ENTRY.sub(_text_entry, text)
    return text


_LEAVES = (str, int, float, bool, type(None))
MAX_SCANNED_TEXT = 1 << 16
CIRCULAR = "[circular reference]"
TOO_DEEP = "[nested too deep]"
MAX_DEPTH = 32


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` (mappings, lists, tuples) with every secret-named entry, and the
    value of every secret-named ``(name, value)`` pair, replaced by ``***``; credentials written
    in strings of up to ``MAX_SCANNED_TEXT`` characters masked. Other objects are kept as they are. Cycles and nesting deeper than
    ``MAX_DEPTH`` become markers: this never recurses without bound and never raises."""
    try:
        return _mask(value, 0, set())
    except Exception:  # a container whose iteration raises: hand nothing of it on
        return "[unreadable value]"


def _secret_fields(value: object) -> list[str]:
    """The secret-named fields of a dataclass instance or a pydantic model."""
    if isinstance(value, type):
        return []
    if dataclasses.is_dataclass(value):
        return [f.name for f in dataclasses.fields(value) if is_secret_name(f.name)]
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, Mapping) and callable(getattr(value, "model_copy", None)):
        return [name for name in fields if isinstance(name, str) and is_secret_name(name)]
    return []


def _masked_object(value: Any) -> Any:
    """A dataclass or pydantic model with secret fields as a copy of the same type with those
    fields masked (``[unreadable value]`` if no copy can be made); any other object as is."""
    try:
        names = _secret_fields(value)
        if not names:
            return value
        update = dict.fromkeys(names, MASK)
        if dataclasses.is_dataclass(value):
            return dataclasses.replace(value, **update)  # type: ignore[type-var]
        return value.model_copy(update=update)
    except Exception:
        return "[unreadable value]"


def _mask(value: Any, depth: int, path: set[int]) -> Any:
    kind = type(value)
    if kind is str:
        # Credentials sit in short strings (URLs, headers); long ones are content, handed on
        # whole to in-process handlers without a scan costing seconds per 50 MB.
        return mask_text(value) if len(value) <= MAX_SCANNED_TEXT else value
    if kind in _LEAVES:
        return value
    if not isinstance(value, (Mapping, list, tuple)):
        return _masked_object(value)
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    key = id(value)
    if key in path:
        return CIRCULAR
    path.add(key)
    try:
        if isinstance(value, Mapping):
            if secret_entry(value):
                return {k: (MASK if k == "value" else v) for k, v in value.items()}
            return {
                k: (MASK if is_secret_key(k) else _mask(v, depth + 1, path))
                for k, v in value.items()
            }
        if secret_pair(value):
            return type(value)((value[0], MASK)) if kind in (list, tuple) else [value[0], MASK]
        items = [_mask(v, depth + 1, path) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    finally:
        path.discard(key)
