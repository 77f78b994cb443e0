"""Sequential composition: ``SimpleSequentialChain`` (one value flows through) and
``SequentialChain`` (named variables flow through)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from spanhook.chains.base import Chain
from spanhook.flow import Call, Flow, arun_flow, run_flow
from spanhook.primitive import PrimitiveOptions
from spanhook.runtime.run import Run

if TYPE_CHECKING:
    from typing_extensions import Unpack

_COLORS = ["blue", "yellow", "pink", "green", "red"]


class SimpleSequentialChain(Chain):
    """Each chain has one input and one output; the output of one is the input of the next."""

    def __init__(
        self,
        *,
        chains: Sequence[Chain],
        input_key: str = "input",
        output_key: str = "output",
        strip_outputs: bool = False,
        **options: Unpack[PrimitiveOptions],
    ) -> None:
        super().__init__(**options)
        if not chains:
            raise ValueError("SimpleSequentialChain needs at least one chain")
        for i, c in enumerate(chains):
            if not isinstance(c, Chain):
                raise TypeError(f"chains[{i}] is {type(c).__name__}, not a Chain")
            if len(c.input_keys) != 1 or len(c.output_keys) != 1:
                raise ValueError(
                    f"chains[{i}] ({c.get_name()}) must have exactly one input and one output key "
                    f"for SimpleSequentialChain, it has {list(c.input_keys)} -> {list(c.output_keys)}"
                )
        self.chains = list(chains)
        self.strip_outputs = strip_outputs
        self.input_keys = [input_key]
        self.output_keys = [output_key]

    def _flow(self, inputs: dict[str, Any], run: Run | None) -> Flow[dict[str, Any]]:
        value = inputs[self.input_keys[0]]
        for i, chain in enumerate(self.chains):
            value = yield Call(chain, "run", value)
            if self.strip_outputs and isinstance(value, str):
                value = value.strip()
            if run is not None:
                color = _COLORS[i % len(_COLORS)]
                yield Call(run, "on_text", str(value), color=color, end="\n", verbose=self.verbose)
        return {self.output_keys[0]: value}

    def _call(self, inputs: dict[str, Any], run_manager: Run | None = None) -> dict[str, Any]:
        return run_flow(self._flow(inputs, run_manager))

    async def _acall(
        self, inputs: dict[str, Any], run_manager: Run | None = None
    ) -> dict[str, Any]:
        return await arun_flow(self._flow(inputs, run_manager))


class SequentialChain(Chain):
    """Chains run in order over a growing dict of named variables."""

    def __init__(
        self,
        *,
        chains: Sequence[Chain],
        input_variables: Sequence[str],
        output_variables: Sequence[str] | None = None,
        return_all: bool = False,
        **options: Unpack[PrimitiveOptions],
    ) -> None:
        super().__init__(**options)
        if not chains:
            raise ValueError("SequentialChain needs at least one chain")
        known = set(input_variables)
        for i, c in enumerate(chains):
            missing = [k for k in c.input_keys if k not in known]
            if missing:
                raise ValueError(
                    f"chains[{i}] ({c.get_name()}) needs {missing}, which no earlier step provides"
                )
            overlap = [k for k in c.output_keys if k in known]
            if overlap:
                raise ValueError(f"chains[{i}] ({c.get_name()}) would overwrite {overlap}")
            known |= set(c.output_keys)
        if output_variables is None:
            output_variables = (
                [k for k in known if k not in input_variables]
                if return_all
                else list(chains[-1].output_keys)
            )
        unknown = [k for k in output_variables if k not in known]
        if unknown:
            raise ValueError(f"output_variables {unknown} are produced by no chain")
        self.chains = list(chains)
        self.input_keys = list(input_variables)
        self.output_keys = list(output_variables)

    def _flow(self, inputs: dict[str, Any]) -> Flow[dict[str, Any]]:
        values = dict(inputs)
        for chain in self.chains:
            values.update((yield Call(chain, "__call__", values, return_only_outputs=True)))
        return {k: values[k] for k in self.output_keys}

    def _call(self, inputs: dict[str, Any], run_manager: Run | None = None) -> dict[str, Any]:
        return run_flow(self._flow(inputs))

    async def _acall(
        self, inputs: dict[str, Any], run_manager: Run | None = None
    ) -> dict[str, Any]:
        return await arun_flow(self._flow(inputs))
