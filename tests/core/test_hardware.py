"""The hardware catalogue: the built-in SKUs, a TOML file that replaces them, what a
server offers, and its errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from vendo.app import create_app
from vendo.config import Settings
from vendo.errors import ConfigError
from vendo.hardware import DEFAULT_SKUS, Catalog, load_catalog, server_hardware

CUSTOM = """
[[hardware]]
sku = "cpu-small"
name = "Small CPU"
cpus = 1
memory_gb = 2
price_per_second = 0.00002

[[hardware]]
sku = "gpu-a100-large"
name = "Nvidia A100 (80GB) GPU"
cpus = 10
memory_gb = 144
gpus = 1
gpu_model = "A100"
vram_gb = 80
price_per_second = "0.0014"
"""


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", api_token="t", _env_file=None, **extra)  # type: ignore[arg-type]


def test_the_built_in_catalogue_has_replicates_skus_and_prices() -> None:
    catalog = load_catalog(None)
    cpu = catalog.get("cpu")
    assert cpu is not None and cpu.price_per_second == Decimal("0.0001") and cpu.gpus == 0
    assert "gpu-2x-l40s" in catalog and "gpu-a100-large-2x" in catalog  # verbatim, irregular
    h100 = catalog.get("gpu-h100")
    assert h100 is not None and h100.gpus == 1 and h100.price_per_second == Decimal("0.001525")
    assert len({s.sku for s in DEFAULT_SKUS}) == len(DEFAULT_SKUS)


def test_a_machine_offers_what_it_can_place() -> None:
    catalog = Catalog(DEFAULT_SKUS)
    assert [s.sku for s in catalog.offered(0)] == ["cpu"]
    assert "gpu-t4" in [s.sku for s in catalog.offered(1)]
    assert "gpu-h100-2x" not in [s.sku for s in catalog.offered(1)]
    assert len(catalog.offered(0, gpu_as_cpu=True)) == len(DEFAULT_SKUS)
    # a SKU that left the catalogue costs nothing instead of breaking a usage report
    assert catalog.price("gone") == Decimal(0)


def test_a_file_replaces_the_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "hardware.toml"
    path.write_text(CUSTOM)
    catalog = load_catalog(path)
    assert [s.sku for s in catalog] == ["cpu-small", "gpu-a100-large"]
    small = catalog.get("cpu-small")
    assert small is not None and small.cpus == 1 and small.price_per_second == Decimal("0.00002")
    assert "cpu" not in catalog


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[hardware]]\nsku = 'x'\ncpus = 1\nmemory_gb = 1\n", "price_per_second is required"),
        ("[[hardware]]\nsku='x'\ncpus=1\nmemory_gb=1\nprice_per_second=-1\n", "price_per_second"),
        ("[[hardware]]\nsku='x'\ncpus=0\nmemory_gb=1\nprice_per_second=0\n", "cpus"),
        ("[[hardware]]\nsku='x'\ncpus=1\nmemory_gb=1\nprice_per_second=0\ncolour=1\n", "colour"),
        ("[[hardware]]\nsku='x'\ncpus='many'\nmemory_gb=1\nprice_per_second=0\n", "entry 1"),
        ("hardware = 3\n", "at least one [[hardware]]"),
        ("[[hardware]\n", "hardware file"),
        (CUSTOM + CUSTOM, "listed twice"),
    ],
)
def test_a_bad_file_says_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "hardware.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_catalog(path)
    assert says in str(caught.value)


def test_a_missing_file_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hardware file"):
        create_app(_settings(tmp_path, hardware_file=tmp_path / "missing.toml"))


def test_gpu_skus_need_gpus_or_the_development_setting(tmp_path: Path) -> None:
    path = tmp_path / "hardware.toml"
    path.write_text(
        CUSTOM.split("[[hardware]]")[0] + "[[hardware]]" + CUSTOM.split("[[hardware]]")[2]
    )
    with pytest.raises(ConfigError, match="VENDO_GPU_AS_CPU"):
        server_hardware(_settings(tmp_path, hardware_file=path))  # this machine has no GPU
    offered = server_hardware(_settings(tmp_path, hardware_file=path, gpu_as_cpu=True))
    assert offered.offered_skus() == ["gpu-a100-large"]


async def test_the_api_lists_and_accepts_the_offered_skus(tmp_path: Path) -> None:
    path = tmp_path / "hardware.toml"
    path.write_text(CUSTOM)
    app = create_app(_settings(tmp_path, hardware_file=path, gpu_as_cpu=True), run_scheduler=False)
    auth = {"Authorization": "Bearer t"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        listed = (await c.get("/v1/hardware", headers=auth)).json()
        assert listed == [
            {"name": "Small CPU", "sku": "cpu-small"},
            {"name": "Nvidia A100 (80GB) GPU", "sku": "gpu-a100-large"},
        ]
        doc = (await c.get("/openapi.json")).json()
        enum = doc["components"]["schemas"]["ModelCreate"]["properties"]["hardware"]["enum"]
        assert enum == ["cpu-small", "gpu-a100-large"]
        body = {"owner": "admin", "name": "m", "visibility": "private", "hardware": "cpu"}
        refused = await c.post("/v1/models", headers=auth, json=body)
        assert refused.status_code == 422 and "cpu-small" in refused.text
        made = await c.post("/v1/models", headers=auth, json={**body, "hardware": "cpu-small"})
        assert made.status_code == 201, made.text
        assert made.json()["hardware"] == "cpu-small"
