"""Jaeger configs for more than one node (production/jaeger-{elasticsearch,opensearch,
cassandra}.yaml). Those stores do not run here: each file is parsed for wiring and
checked by the real Jaeger binary's ``validate`` (unknown keys, invalid URLs, ...), and
must keep the ports of jaeger-badger.yaml so it can replace it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from collector_harness import REPO_ROOT, jaeger_binary, require_binary
from scaleout_harness import JAEGER_BADGER_CONFIG
from scaleout_wiring import defined_components, env_default, load_yaml, used_components, walk

STORES = {
    "elasticsearch": "elasticsearch",
    "opensearch": "opensearch",
    "cassandra": "cassandra",
}
CONFIGS = {store: REPO_ROOT / "production" / f"jaeger-{store}.yaml" for store in STORES}


def endpoints(config: dict[str, Any]) -> dict[str, str]:
    return {path: env_default(v) for path, v in walk(config) if path.endswith(".endpoint")}


@pytest.mark.parametrize("store", sorted(STORES))
def test_wiring_and_ports_match_the_badger_config(store: str) -> None:
    config = load_yaml(CONFIGS[store])
    assert used_components(config) == defined_components(config)
    backends: dict[str, Any] = config["extensions"]["jaeger_storage"]["backends"]
    [(name, backend)] = backends.items()
    assert set(backend) == {STORES[store]}
    assert config["extensions"]["jaeger_query"]["storage"] == {"traces": name}
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == name
    assert endpoints(config) == endpoints(load_yaml(JAEGER_BADGER_CONFIG))
    # the cluster address comes from the environment
    assert any("${env:" in str(v) for p, v in walk(backend) if "server" in p)


@pytest.mark.collector
@pytest.mark.parametrize("config", [*sorted(CONFIGS.values()), JAEGER_BADGER_CONFIG], ids=str)
def test_jaeger_validates_the_config(config: Path) -> None:
    binary = require_binary(jaeger_binary(), "jaeger")
    done = subprocess.run(
        [binary, "validate", f"--config={config}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.collector
def test_jaeger_validate_rejects_a_broken_store_config(tmp_path: Path) -> None:
    # the check above is only worth something if validate looks inside the backend
    binary = require_binary(jaeger_binary(), "jaeger")
    broken = tmp_path / "broken.yaml"
    text = CONFIGS["elasticsearch"].read_text(encoding="utf-8")
    broken.write_text(text.replace("server_urls:", "server_url:"), encoding="utf-8")
    done = subprocess.run(
        [binary, "validate", f"--config={broken}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "server_url" in done.stdout + done.stderr
