"""Cost of the value -> attribute policy (``content_value``: render, mask secrets, bound,
mark), against ``json.dumps(value, ensure_ascii=False)`` measured in the same run: the floor
of any JSON rendering, which neither bounds, masks nor survives hostile values.

Typical content is what chains, tools and models record; hostile content is what the policy
exists for (a 50 MB string, a 1,000,000-item list, 10,000 levels of nesting), where the
baseline either takes time proportional to the value or raises.

Run: ``python benchmarks/bench_values.py [--repeats R]``. Prints us/call and the ratios.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from spanhook.tracing.attributes import content_value

LIMIT = 4096


def deep(levels: int) -> Any:
    root: dict[str, Any] = {}
    cur = root
    for _ in range(levels):
        cur["d"] = {}
        cur = cur["d"]
    return root


TYPICAL: dict[str, Any] = {
    "short prompt": "What is 2 + 2?",
    "chain inputs": {"question": "What is the capital of France?", "context": "Paris. " * 20},
    "chat messages": [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "hello there " * 20}]},
    ],
    "tool result 20 kB": "word " * 4000,
    "50 nested records": {f"k{i}": {"v": i, "s": "text"} for i in range(50)},
}
HOSTILE: dict[str, Any] = {
    "50 MB string": "h" * 50_000_000,
    "1,000,000-item list": list(range(1_000_000)),
    "10,000 levels": deep(10_000),
}


def per_call(fn: Callable[[], Any], repeats: int) -> float:
    """Minimum over ``repeats`` rounds of the mean time of a call, in microseconds."""
    calls = max(1, int(0.05 / max(_once(fn), 1e-7)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def _once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def baseline(value: Any) -> Callable[[], Any]:
    return lambda: json.dumps(value, ensure_ascii=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"content_value(value, {LIMIT}) vs json.dumps(value), min of {args.repeats} rounds")
    for title, cases in (("typical content", TYPICAL), ("hostile content", HOSTILE)):
        print(title)
        for name, value in cases.items():
            ours = per_call(lambda v=value: content_value(v, LIMIT), args.repeats)
            try:
                base = per_call(baseline(value), max(1, args.repeats // 3))
                ratio = f"{ours / base:6.2f}x json.dumps ({base:10.1f} us)"
            except (RecursionError, ValueError) as e:
                ratio = f"json.dumps raises {type(e).__name__}"
            print(f"  {name:22s} {ours:10.1f} us/call   {ratio}")


if __name__ == "__main__":
    main()
