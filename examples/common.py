"""What the examples share: choosing the model from the command line.

By default every example runs on spanhook's deterministic offline model (no network, no
key). ``--openai-base-url URL`` switches to ``spanhook.chat_models.ChatOpenAI`` against any
OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM); the key comes from
``--api-key`` or ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from spanhook.chat_models import ChatOpenAI
from spanhook.llms import OfflineLLM


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (default: spanhook's offline model)")
    group.add_argument(
        "--openai-base-url",
        metavar="URL",
        help="use ChatOpenAI against this OpenAI-compatible server, e.g. http://localhost:8000/v1",
    )
    group.add_argument("--model", default="gpt-4o-mini", help="model name for --openai-base-url")
    group.add_argument("--api-key", help="API key for --openai-base-url (default: $OPENAI_API_KEY)")


def make_model(
    args: argparse.Namespace,
    *,
    streaming: bool = False,
    delay: float = 0.0,
    callbacks: Sequence[Any] | None = None,
) -> OfflineLLM | ChatOpenAI:
    """The model the command line asked for. ``delay`` (seconds per token) slows the
    offline model down so streaming is visible; a real server has its own pace."""
    if args.openai_base_url:
        return ChatOpenAI(
            args.model,
            base_url=args.openai_base_url,
            api_key=args.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            streaming=streaming,
            callbacks=callbacks,
        )
    return OfflineLLM(streaming=streaming, delay=delay, callbacks=callbacks)
