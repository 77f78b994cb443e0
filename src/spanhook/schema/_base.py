"""A tiny dataclass mixin giving schema objects the dump methods handlers expect."""

from __future__ import annotations

import dataclasses
from typing import Any


class Serializable:
    """Adds ``model_dump()`` / ``dict()`` so handlers written for pydantic models work."""

    def model_dump(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    def dict(self) -> dict[str, Any]:
        return self.model_dump()
