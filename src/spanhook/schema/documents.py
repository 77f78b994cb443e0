"""Retrieved documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from spanhook.schema._base import Serializable


@dataclass
class Document(Serializable):
    page_content: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    type: Literal["Document"] = "Document"
