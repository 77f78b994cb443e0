"""Run ``phoenix serve`` with every listening socket on 127.0.0.1.

``PHOENIX_HOST`` binds Phoenix's HTTP server (UI, REST, GraphQL, OTLP/HTTP), but its OTLP
gRPC server binds ``[::]:<PHOENIX_GRPC_PORT>`` (every interface) and has no host setting.
This wrapper rewrites the wildcard addresses gRPC servers are given to 127.0.0.1, then runs
Phoenix's own command line. Run it with the Python of Phoenix's venv
(``scripts/install-phoenix.sh`` prints it); ``scripts/phoenix.sh`` does both.
"""

from __future__ import annotations

import sys
from typing import Any

from grpc.aio import _server

_WILDCARDS = ("[::]:", "0.0.0.0:", ":")


def _loopback(address: str) -> str:
    for prefix in _WILDCARDS:
        if address.startswith(prefix):
            return "127.0.0.1:" + address[len(prefix) :]
    return address


_insecure = _server.Server.add_insecure_port
_secure = _server.Server.add_secure_port


def _add_insecure_port(self: Any, address: str) -> int:
    return _insecure(self, _loopback(address))


def _add_secure_port(self: Any, address: str, credentials: Any) -> int:
    return _secure(self, _loopback(address), credentials)


_server.Server.add_insecure_port = _add_insecure_port  # type: ignore[method-assign]
_server.Server.add_secure_port = _add_secure_port  # type: ignore[method-assign]

if __name__ == "__main__":
    from phoenix.server.main import main

    sys.argv = ["phoenix", "serve", *sys.argv[1:]]
    main()
