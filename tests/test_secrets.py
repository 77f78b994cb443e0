"""Secrets are never exported, whatever their shape: mapping keys at any depth, pydantic
models and dataclasses (by field), named tuples, header lists of pairs and header entries,
URLs with credentials; checked on the rendered values, then on every byte a real OTLP/gRPC
receiver got."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import pydantic
import pytest

import spanhook
from raw_receiver import RawGrpcReceiver
from spanhook.agents import AgentExecutor
from spanhook.chains import LLMChain
from spanhook.llms import LLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.tools import Tool
from spanhook.tracing import attributes as attr
from spanhook.tracing.secrets import mask_secrets, mask_text
from spanhook.tracing.values import render

SECRETS = [f"SECRET-{i}-x9q" for i in range(12)]


class Settings(pydantic.BaseModel):
    api_key: str
    endpoint: str


@dataclasses.dataclass
class Credentials:
    user: str
    password: str


class Creds(NamedTuple):
    client_id: str
    client_secret: str


def shapes() -> dict[str, Any]:
    """One secret in each shape an application hands over."""
    s = SECRETS
    return {
        "flat": {"api_key": s[0], "Authorization": f"Bearer {s[1]}"},
        "nested": {"config": {"llm": {"openai": {"secret": s[2]}}}},
        "pydantic": Settings(api_key=s[3], endpoint="https://example.invalid"),
        "dataclass": Credentials(user="u", password=s[4]),
        "named_tuple": Creds(client_id="c", client_secret=s[5]),
        "header_pairs": [("Content-Type", "json"), ("Authorization", f"Bearer {s[6]}")],
        "header_entries": [{"name": "X-Api-Key", "value": s[7]}],
        "url": f"https://user:{s[8]}@db.example.invalid:5432/app",
        "query": f"https://api.example.invalid/v1?api_key={s[9]}&q=ok",
        "list_of_models": [Settings(api_key=s[10], endpoint="e")],
        "tuple_pairs": (("access_token", s[11]),),
    }


def test_every_shape_of_secret_is_masked_when_rendered() -> None:
    text = render(shapes(), 100_000)
    assert not [s for s in SECRETS if s in text]
    data = json.loads(text)
    assert data["flat"] == {"api_key": "***", "Authorization": "***"}
    assert data["pydantic"] == {"api_key": "***", "endpoint": "https://example.invalid"}
    assert data["dataclass"] == {"user": "u", "password": "***"}
    assert data["named_tuple"] == {"client_id": "c", "client_secret": "***"}
    assert data["header_pairs"] == [["Content-Type", "json"], ["Authorization", "***"]]
    assert data["header_entries"] == [{"name": "X-Api-Key", "value": "***"}]
    assert data["url"] == "https://***@db.example.invalid:5432/app"
    assert data["query"] == "https://api.example.invalid/v1?api_key=***&q=ok"


def test_a_secret_is_masked_even_when_the_text_around_it_is_cut() -> None:
    url = "x" * 90 + f" https://admin:{SECRETS[0]}@host/path"
    text = render(url, 100)
    assert SECRETS[0] not in text and SECRETS[0][:5] not in text


def test_handler_payloads_are_masked_without_losing_their_shape() -> None:
    cyc: dict[str, Any] = {"api_key": "k"}
    cyc["me"] = cyc
    out = mask_secrets(
        {
            "headers": [("Authorization", "Bearer t"), ("Accept", "x")],
            "base_url": "https://u:p@h",
            "cyc": cyc,
            "n": 1,
        }
    )
    assert out["headers"] == [("Authorization", "***"), ("Accept", "x")]
    assert out["base_url"] == "https://***@h"
    assert out["cyc"] == {"api_key": "***", "me": "[circular reference]"}
    assert out["n"] == 1
    deep: list[Any] = []
    cur = deep
    for _ in range(10_000):
        cur.append([])
        cur = cur[0]
    assert "[nested too deep]" in json.dumps(mask_secrets(deep))


def test_handlers_get_models_and_dataclasses_of_their_type_with_secret_fields_masked() -> None:
    from helpers import Recorder

    class Echoing(LLM):
        def _call(self, prompt: str, stop: list[str] | None = None, **kwargs: Any) -> str:
            return f"{kwargs['client'].api_key} {kwargs['login'].password}"

    rec = Recorder()
    client = Settings(api_key=SECRETS[0], endpoint="e")
    login = Credentials(user="u", password=SECRETS[1])
    answer = Echoing().invoke("q", callbacks=[rec], client=client, login=login)
    assert answer == f"{SECRETS[0]} {SECRETS[1]}"  # the model itself got the real ones
    params = rec.of("on_llm_start")[0].kwargs["invocation_params"]
    assert isinstance(params["client"], Settings) and params["client"].api_key == "***"
    assert params["client"].endpoint == "e"
    assert isinstance(params["login"], Credentials) and params["login"].password == "***"
    assert client.api_key == SECRETS[0] and login.password == SECRETS[1]  # copies, not edits


def test_ordinary_text_is_left_alone() -> None:
    for text in ("a=b", "x@y.z", "max_tokens=5", "mailto:me@example.invalid", "q?x=1"):
        assert mask_text(text) == text
    assert attr.is_secret_name("max_tokens") is False
    assert attr.is_secret_name("OPENAI_API_KEY") is True


# -- the bytes a real receiver got ------------------------------------------------------------


@pytest.fixture
def rx(monkeypatch: pytest.MonkeyPatch) -> Iterator[RawGrpcReceiver]:
    with RawGrpcReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{receiver.endpoint}")
        yield receiver
        spanhook.shutdown(timeout=2.0)


def test_no_secret_reaches_the_wire_whatever_its_shape(rx: RawGrpcReceiver) -> None:
    """Secrets in chain inputs, metadata, tool arguments and results, custom events, tags,
    model prompts and errors: none of them is in any byte the receiver got."""
    spanhook.configure(exporters="otlp", capture_content=True)
    s = shapes()
    echo = Tool(name="echo", func=lambda x: {"echoed": s, "input": x}, description="d")
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("say {topic}"))
    meta = {**s, "connection": f"postgres://app:{SECRETS[8]}@db/app"}

    chain.invoke({"topic": s}, metadata=meta, tags=[s["url"], s["query"]])
    echo.run({"x": s}, metadata=meta)

    def failing(_: str) -> str:
        raise RuntimeError(f"could not reach {s['url']} with {s['query']}")

    with pytest.raises(RuntimeError):
        Tool(name="boom", func=failing, description="d").run("x")
    AgentExecutor(llm=OfflineLLM(), tools=[echo]).run(f"use {s['url']}", metadata=meta)
    assert spanhook.force_flush(timeout=10.0)
    raw = rx.wait_for_bytes(min_spans=5)
    assert b"db.example.invalid" in raw  # the content itself was exported...
    leaked = [secret for secret in SECRETS if secret.encode() in raw]
    assert leaked == []  # ...and no secret with it
