"""Each source quirk is handled in one place and every dropped row is counted."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from archipel.catalog._sources import EXTRA_COLUMNS, parse_extra, parse_gcp, parse_skypilot
from archipel.core import MISSING, NANO, CatalogError

GCP_HEADER = "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice"


def write(tmp_path: Path, name: str, text: str, gz: bool = False) -> Path:
    path = tmp_path / name
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_gcp_accelerator_is_priced_with_its_host_in_the_same_zone(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "gcp.csv",
        "\n".join(
            [
                GCP_HEADER,
                "a3-highgpu-8g,208,1872,,,,us-central1,us-central1-a,10.0,4.0",
                "a3-highgpu-8g,208,1872,,,,us-central1,us-central1-b,11.0,5.0",
                ",,,H100,8,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 81920}}]},us-central1,us-central1-a,80.5,20.25",
                ",,,T4,2,,europe-west4,europe-west4-a,0.7,",
                "n1-highmem-8,8,52,,,,europe-west4,europe-west4-a,0.5,0.1",
                ",,,tpu-v5p-8,1,,us-east5,us-east5-a,33.6,14.0",
                ",,,L4,3,,us-east1,us-east1-b,2.0,1.0",
            ]
        ),
    )
    rows, report = parse_gcp(path, "gcp")
    by_type = {(r.instance_type, r.zone, r.accelerator): r for r in rows}
    h100 = by_type[("a3-highgpu-8g", "us-central1-a", "H100")]
    assert (h100.accelerator, h100.accelerator_count) == ("H100", 8)
    assert h100.price == int(90.5 * NANO)  # host 10.0 + accelerators 80.5
    assert h100.spot_price == int(24.25 * NANO)
    assert h100.gpu_memory_mib == 81920
    assert h100.vcpus == 208
    t4 = by_type[("n1-highmem-8", "europe-west4-a", "T4")]
    assert t4.accelerator == "T4" and t4.price == int(1.2 * NANO)
    assert t4.spot_price == MISSING  # accelerator has no spot price: the bundle has none
    tpu = by_type[("tpu-v5p-8", "us-east5-a", "tpu-v5p-8")]
    assert tpu.price == int(33.6 * NANO)
    assert report.dropped == {"no host machine type for L4 x3 in zone": 1}
    # hosts are also sold alone, without accelerators
    assert ("a3-highgpu-8g", "us-central1-b", "") in by_type


VAST_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region"
)


@pytest.mark.parametrize(
    ("region_text", "region", "country"),
    [
        ("Alberta, CA, NA", "CA-Alberta", "CA"),
        (", US, NA", "US", "US"),
        ("Switzerland, CH, EU", "CH-Switzerland", "CH"),
        ("Sverdlovsk Oblast, RU, EU", "RU-Sverdlovsk Oblast", "RU"),
        ("somewhere", "somewhere", None),
    ],
    ids=["province", "no place", "EU continent is not the Union", "russia", "unparsable"],
)
def test_vast_region_text_gives_the_country(
    tmp_path: Path, region_text: str, region: str, country: str | None
) -> None:
    path = write(
        tmp_path, "vast.csv", f'{VAST_HEADER}\n1x-H100,H100,1,16,64,,1.9,0.00,"{region_text}"\n'
    )
    (row,), _ = parse_skypilot("vast", path, "vast")
    assert (row.region, row.country) == (region, country)
    assert row.spot_price == MISSING  # 0.00 means "no interruptible price", not free


def test_rows_without_any_price_are_dropped_and_counted(tmp_path: Path) -> None:
    header = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region"
    path = write(
        tmp_path,
        "x.csv.gz",
        f"{header}\np5e.48xlarge,H200,8,192,2048,,,,us-east-2\n"
        "p5.48xlarge,H100,8,192,2048,,55.04,,us-east-2\n",
        gz=True,
    )
    rows, report = parse_skypilot("aws", path, "aws")
    assert [r.instance_type for r in rows] == ["p5.48xlarge"]
    assert report.dropped == {"no price at all": 1}


def test_a_row_without_a_region_is_dropped_and_counted(tmp_path: Path) -> None:
    """Nothing says where it runs: it can neither be launched nor checked against a country."""
    header = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice"
    path = write(
        tmp_path, "s.csv", f"{header}\nECS1GPU,A30,1,8,32,0.5,,,\nECS2GPU,A30,2,8,32,1,it-fr2,,\n"
    )
    rows, report = parse_skypilot("seeweb", path, "seeweb")
    assert [r.instance_type for r in rows] == ["ECS2GPU"]
    assert report.dropped == {"no region (location unknown)": 1}


@pytest.mark.parametrize(
    ("stated_mib", "whole_gib"),
    [
        pytest.param(81559, 80, id="H100 PCIe as the driver reports it"),
        pytest.param(81920, 80, id="nominal 80 GiB"),
        pytest.param(24564, 24, id="RTX 4090 as the driver reports it"),
        pytest.param(95830, 94, id="H100 NVL"),
        pytest.param(300, 1, id="less than half a GiB is still some memory"),
    ],
)
def test_gpu_memory_is_in_whole_gib(tmp_path: Path, stated_mib: int, whole_gib: int) -> None:
    header = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice"
    info = f"{{'Gpus': [{{'Name': 'X', 'Count': 1, 'MemoryInfo': {{'SizeInMiB': {stated_mib}}}}}]}}"
    path = write(tmp_path, "s.csv", f'{header}\nG1,H100,1,8,32,1,r1,"{info}",\n')
    (row,), _ = parse_skypilot("p", path, "p")
    assert row.gpu_memory_mib == whole_gib * 1024


def test_a_price_catalog_is_read_in_the_currency_it_is_given(tmp_path: Path) -> None:
    header = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice"
    path = write(tmp_path, "s.csv", f"{header}\nG1,H100,1,8,32,2.52,fr-par,,\n")
    (row,), _ = parse_skypilot("scaleway", path, "scaleway", currency="EUR")
    assert row.currency == "EUR"


def test_a_bad_price_in_a_source_is_a_catalog_error_naming_the_line(tmp_path: Path) -> None:
    header = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice"
    path = write(tmp_path, "s.csv", f"{header}\nECS1GPU,A30,1,8,32,cheap,it,,\n")
    with pytest.raises(CatalogError, match=r"s\.csv:2: not a decimal price"):
        parse_skypilot("seeweb", path, "seeweb")


def extra_row(**values: str) -> str:
    base = dict.fromkeys(EXTRA_COLUMNS, "")
    base.update(
        provider="ovhcloud",
        region="GRA11",
        instance_type="h100-380",
        accelerator="H100",
        accelerator_count="1",
        gpu_memory_gib="80",
        price="2.80",
        currency="EUR",
        price_unit="hour",
        source="https://example.org/prices",
        as_of="2026-09-26",
    )
    base.update(values)
    return ",".join(base[c] for c in EXTRA_COLUMNS)


def test_curated_offers_keep_currency_source_and_date(tmp_path: Path) -> None:
    path = write(tmp_path, "ovh.csv", ",".join(EXTRA_COLUMNS) + "\n" + extra_row() + "\n")
    (row,), _ = parse_extra(path)
    assert row.currency == "EUR"
    assert row.price == int(2.8 * NANO)
    assert row.gpu_memory_mib == 80 * 1024
    assert row.source == "https://example.org/prices (as of 2026-09-26)"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"price_unit": "month"}, "price_unit must be 'hour'"),
        ({"price": '"2,80"'}, "not a decimal price"),
        ({"currency": "euro"}, "ISO 4217"),
    ],
)
def test_curated_offers_are_validated(tmp_path: Path, values: dict[str, str], message: str) -> None:
    path = write(tmp_path, "ovh.csv", ",".join(EXTRA_COLUMNS) + "\n" + extra_row(**values) + "\n")
    with pytest.raises(CatalogError, match=message):
        parse_extra(path)


def test_curated_offers_need_the_exact_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "ovh.csv", "provider,price\novh,1\n")
    with pytest.raises(CatalogError, match="columns must be"):
        parse_extra(path)
