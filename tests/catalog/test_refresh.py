"""`archipel catalog refresh`: parsing each public price source, failures as data, the CLI.

Every request goes to an ``httpx.MockTransport`` serving the hand-written payloads
in ``tests/fixtures/refresh`` (see its README); nothing here touches the network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import archipel.cli._refresh as cli_refresh
from archipel.catalog import (
    AzureRetailPrices,
    EcbReferenceRates,
    OfferRow,
    OvhCloudCatalog,
    SourceError,
    SourceReport,
    collect_rows,
    load_snapshot,
    refresh,
    source_registry,
)
from archipel.catalog._refresh import AZURE_PRICES_URL, parse_ecb
from archipel.cli._app import app
from archipel.core import MISSING, CatalogError, CatalogSnapshot, InputError, Offer

FIXTURES = Path(__file__).parents[1] / "fixtures" / "refresh"
TODAY = date(2026, 11, 22)

Shipped = tuple[Sequence[OfferRow], Sequence[SourceReport]]
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(scope="module")
def shipped() -> Shipped:
    """The shipped sources, parsed once for the whole module."""
    return collect_rows()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def serve_fixtures(request: httpx.Request) -> httpx.Response:
    """Answer like the three public sources, from the fixture files."""
    host = request.url.host
    if host == "prices.azure.com":
        page = "azure_page2.json" if request.url.params.get("$skip") else "azure_page1.json"
        return httpx.Response(200, content=fixture(page))
    if host == "api.ovh.com":
        assert request.url.params["ovhSubsidiary"] == "FR"
        return httpx.Response(200, content=fixture("ovh_cloud_catalog.json"))
    if host == "www.ecb.europa.eu":
        return httpx.Response(200, content=fixture("ecb_daily.xml"))
    return httpx.Response(404)


def mock_client(
    overrides: Mapping[str, Handler] | None = None, seen: list[httpx.Request] | None = None
) -> httpx.Client:
    """A client on a MockTransport: the fixtures, with some hosts answered by ``overrides``."""

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        override = (overrides or {}).get(request.url.host)
        return override(request) if override else serve_fixtures(request)

    return httpx.Client(transport=httpx.MockTransport(handler))


def accelerator_offers(snapshot: CatalogSnapshot, provider: str) -> list[Offer]:
    table = snapshot.offers
    providers = np.array([c.provider for c in table.classes])[table.col("class_idx")]
    accelerators = np.array(table.accelerators)[table.col("accel_idx")]
    rows = np.flatnonzero((providers == provider) & (accelerators != ""))
    return [table.offer(int(i)) for i in rows]


def cpu_offer_count(snapshot: CatalogSnapshot, provider: str) -> int:
    table = snapshot.offers
    providers = np.array([c.provider for c in table.classes])[table.col("class_idx")]
    accelerators = np.array(table.accelerators)[table.col("accel_idx")]
    return int(np.count_nonzero((providers == provider) & (accelerators == "")))


# --- Azure Retail Prices API -------------------------------------------------------------


def test_azure_keeps_linux_on_demand_and_spot_with_the_shipped_accelerators(
    shipped: Shipped,
) -> None:
    """Windows and Low Priority meters are skipped; GPUs come from the shipped rows of the SKU."""
    with mock_client() as client:
        rows = AzureRetailPrices(lambda: shipped[0]).fetch(client)
    by_key = {(r.instance_type, r.region): r for r in rows}
    # the made-up SKU and the GB200 SKU (no shipped accelerator) are not offers
    assert set(by_key) == {
        ("Standard_NC24ads_A100_v4", "westeurope"),
        ("Standard_NC24ads_A100_v4", "francecentral"),
        ("Standard_ND96isr_H100_v5", "eastus"),
    }
    a100 = by_key[("Standard_NC24ads_A100_v4", "westeurope")]
    assert (a100.price, a100.spot_price) == (4_901_000_000, 1_225_300_000)
    assert (a100.accelerator, a100.accelerator_count) == ("A100-80GB", 1.0)
    assert (a100.vcpus, a100.memory_gib, a100.currency) == (24.0, 220.0, "USD")
    assert a100.provider == "azure" and a100.zone == ""
    # JSON numbers are read as Decimal: a float would have made this 4_123_456_788
    assert by_key[("Standard_NC24ads_A100_v4", "francecentral")].price == 4_123_456_789
    assert by_key[("Standard_NC24ads_A100_v4", "francecentral")].spot_price == MISSING
    # of two meters for one SKU and region, the one that took effect last wins
    h100 = by_key[("Standard_ND96isr_H100_v5", "eastus")]
    assert h100.price == 101_450_000_000
    assert (h100.accelerator, h100.accelerator_count) == ("H100", 8.0)


def test_azure_asks_for_gpu_families_and_follows_next_page_link(shipped: Shipped) -> None:
    seen: list[httpx.Request] = []
    with mock_client(seen=seen) as client:
        AzureRetailPrices(lambda: shipped[0]).fetch(client)
    assert len(seen) == 2
    query = seen[0].url.params["$filter"]
    assert str(seen[0].url).startswith(AZURE_PRICES_URL)
    assert "serviceName eq 'Virtual Machines'" in query
    assert "priceType eq 'Consumption'" in query
    assert "startswith(armSkuName, 'Standard_ND')" in query
    assert seen[1].url.params["$skip"] == "1000"


def test_azure_refuses_a_next_page_link_to_another_host(shipped: Shipped) -> None:
    def elsewhere(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Items": [], "NextPageLink": "https://example.org/x"})

    with mock_client({"prices.azure.com": elsewhere}) as client, pytest.raises(SourceError):
        AzureRetailPrices(lambda: shipped[0]).fetch(client)


# --- OVHcloud public cloud catalog -------------------------------------------------------


def test_ovh_reads_hourly_gpu_flavors_in_micro_cents(shipped: Shipped) -> None:
    with mock_client() as client:
        rows = OvhCloudCatalog(lambda: shipped[0]).fetch(client)
    # the monthly plan, the CPU flavor and the project plan are not hourly GPU offers
    assert {r.instance_type for r in rows} == {"a100-180", "l40s-90", "b200-2880"}
    assert {r.currency for r in rows} == {"EUR"}
    a100 = sorted((r for r in rows if r.instance_type == "a100-180"), key=lambda r: r.region)
    # regions from the plan's region configuration
    assert [(r.region, r.zone) for r in a100] == [("BHS5", ""), ("GRA11", "")]
    # 285_000_000 micro-cents = 2.85 EUR per hour = 2_850_000_000 nano-units
    assert {r.price for r in a100} == {2_850_000_000}
    assert a100[0].spot_price == MISSING
    assert (a100[0].accelerator, a100[0].accelerator_count) == ("A100-80GB", 1.0)
    assert (a100[0].vcpus, a100[0].memory_gib) == (15.0, 180.0)
    # no region stated: the regions of the shipped rows of the same flavor
    l40s = [r for r in rows if r.instance_type == "l40s-90"]
    assert [(r.region, r.zone, r.price) for r in l40s] == [("GRA11", "", 1_425_000_000)]
    # a flavor the shipped catalog does not know: the GPU from the technical blob
    (b200,) = [r for r in rows if r.instance_type == "b200-2880"]
    assert (b200.accelerator, b200.accelerator_count) == ("B200", 8.0)
    assert b200.gpu_memory_mib == 180 * 1024
    assert b200.region == ""  # unknown place: fails every country rule


# --- ECB reference rates -----------------------------------------------------------------


def test_ecb_rates_become_exact_rates_into_usd() -> None:
    assert parse_ecb(fixture("ecb_daily.xml"))[0] == "2026-11-20"
    with mock_client() as client:
        rates = EcbReferenceRates().fetch_rates(client, "USD")
    assert set(rates) == {"EUR", "USD", "JPY", "GBP", "CHF", "SEK"}
    assert all(isinstance(v, Decimal) for v in rates.values())
    assert rates["USD"] == 1
    assert rates["EUR"] == Decimal("1.0821")  # USD per EUR, as published
    gbp = (Decimal("1.0821") / Decimal("0.8405")).quantize(Decimal("1e-12"), ROUND_HALF_EVEN)
    assert rates["GBP"] == gbp  # USD per GBP, a cross rate through the euro


# --- refresh -----------------------------------------------------------------------------


def test_refresh_replaces_the_accelerator_offers_of_refreshed_providers(
    shipped: Shipped, snapshot: CatalogSnapshot
) -> None:
    with mock_client() as client:
        result = refresh(client, shipped=shipped, today=TODAY)
    assert [(o.name, o.ok, o.count) for o in result.outcomes] == [
        ("azure", True, 3),
        ("ovhcloud", True, 4),
        ("ecb", True, 6),
    ]
    assert result.any_ok and result.snapshot is not None
    azure = accelerator_offers(result.snapshot, "azure")
    assert len(azure) == 3
    assert all(o.source.endswith("(fetched 2026-11-22)") for o in azure)
    assert all(o.source.startswith("Azure Retail Prices API") for o in azure)
    # the sources read GPU families only: Azure's CPU offers stay as shipped
    assert cpu_offer_count(result.snapshot, "azure") == cpu_offer_count(snapshot, "azure") > 0
    assert len(accelerator_offers(result.snapshot, "ovhcloud")) == 4
    # other providers are untouched
    assert len(accelerator_offers(result.snapshot, "lambda")) == len(
        accelerator_offers(snapshot, "lambda")
    )
    report = next(r for r in result.reports if r.source == "refresh azure (fetched 2026-11-22)")
    assert report.kept == 3
    assert report.dropped == {
        "shipped azure accelerator offers replaced": len(accelerator_offers(snapshot, "azure"))
    }


def test_failing_sources_are_reported_and_their_providers_keep_shipped_offers(
    shipped: Shipped, snapshot: CatalogSnapshot
) -> None:
    def server_error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="Internal Server Error")

    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    overrides = {"prices.azure.com": server_error, "api.ovh.com": time_out}
    with mock_client(overrides) as client:
        result = refresh(client, shipped=shipped, today=TODAY)
    outcome = {o.name: o for o in result.outcomes}
    assert not outcome["azure"].ok and outcome["azure"].count == 0
    assert outcome["azure"].error == "prices.azure.com answered HTTP 500"
    assert not outcome["ovhcloud"].ok
    assert outcome["ovhcloud"].error is not None and "timed out" in outcome["ovhcloud"].error
    assert outcome["ecb"].ok
    assert result.snapshot is not None
    for provider in ("azure", "ovhcloud"):
        kept = accelerator_offers(result.snapshot, provider)
        assert [(o.key, o.price_per_hour) for o in kept] == [
            (o.key, o.price_per_hour) for o in accelerator_offers(snapshot, provider)
        ]
        assert not any("fetched" in o.source for o in kept)


def test_an_answer_in_the_wrong_format_is_a_failure_not_a_crash(shipped: Shipped) -> None:
    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    def no_gpu(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"locale": {"currencyCode": "EUR"}, "addons": []})

    overrides = {"prices.azure.com": not_json, "api.ovh.com": no_gpu}
    with mock_client(overrides) as client:
        result = refresh(client, ["azure", "ovhcloud"], shipped=shipped, today=TODAY)
    errors = {o.name: o.error or "" for o in result.outcomes}
    assert "not JSON" in errors["azure"]
    assert "no accelerator offer" in errors["ovhcloud"]
    assert result.snapshot is None and not result.any_ok


def test_when_every_source_fails_there_is_no_snapshot() -> None:
    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    hosts = ("prices.azure.com", "api.ovh.com", "www.ecb.europa.eu")
    with mock_client(dict.fromkeys(hosts, offline)) as client:
        # no `shipped=`: the shipped sources are only parsed once a source has answered
        result = refresh(client, today=TODAY)
    assert result.snapshot is None and not result.any_ok
    assert [o.ok for o in result.outcomes] == [False, False, False]
    assert all((o.error or "").startswith("cannot reach ") for o in result.outcomes)


def test_fx_refresh_changes_comparison_prices_of_eur_offers(shipped: Shipped) -> None:
    with mock_client() as client:
        result = refresh(client, ["ecb"], shipped=shipped, today=TODAY)
    assert result.snapshot is not None
    assert result.snapshot.fx_rates["EUR"] == Decimal("1.0821")
    table = result.snapshot.offers
    currency = np.array(table.strings)[table.col("currency_idx")]
    price, cmp_price = table.col("price"), table.col("cmp_price")
    eur = np.flatnonzero((currency == "EUR") & (price != MISSING))
    assert len(eur) > 0
    for i in eur:
        expected = (Decimal(int(price[i])) * Decimal("1.0821")).to_integral_value(ROUND_HALF_EVEN)
        assert int(cmp_price[i]) == int(expected)
    shipped_rate = Decimal("1.1665")  # fx.yaml, the rate the shipped snapshot uses
    first = int(price[eur[0]])
    assert int(cmp_price[eur[0]]) != int(Decimal(first) * shipped_rate)
    usd = np.flatnonzero(currency == "USD")
    assert np.array_equal(cmp_price[usd], price[usd])


def test_an_unknown_source_name_is_bad_input_and_nothing_is_fetched() -> None:
    seen: list[httpx.Request] = []
    with mock_client(seen=seen) as client, pytest.raises(InputError, match="known: azure"):
        refresh(client, ["azure", "gcp"])
    assert seen == []


def test_the_source_registry_rejects_a_duplicate_name() -> None:
    with pytest.raises(CatalogError, match="registered twice"):
        source_registry(
            ("ecb", lambda shipped: EcbReferenceRates()),
            ("ecb", lambda shipped: EcbReferenceRates()),
        )


# --- the command -------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("ARCHIPEL_CATALOG", raising=False)
    return {"ARCHIPEL_DATA_DIR": str(tmp_path)}


def use_client(
    monkeypatch: pytest.MonkeyPatch, overrides: Mapping[str, Handler] | None = None
) -> list[float]:
    """Give the command a mock client; returns the ``--timeout`` values it asked for."""
    timeouts: list[float] = []

    def factory(timeout: float) -> httpx.Client:
        timeouts.append(timeout)
        return mock_client(overrides)

    monkeypatch.setattr(cli_refresh, "_client_factory", factory)
    return timeouts


def test_cli_writes_the_refreshed_snapshot_to_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]
) -> None:
    use_client(monkeypatch)
    target = tmp_path / "catalog" / "snapshot.npz"
    target.parent.mkdir()
    target.write_bytes(b"an older, broken snapshot")
    result = CliRunner().invoke(app, ["catalog", "refresh"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "azure     ok      3 offers" in result.stdout
    assert "ecb       ok      6 exchange rates" in result.stdout
    assert f"to {target}" in result.stdout
    # written through a temporary file then renamed: the old file is replaced whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["snapshot.npz"]
    refreshed = load_snapshot(target)
    assert refreshed.fx_rates["EUR"] == Decimal("1.0821")
    # and the other commands now read it
    listed = CliRunner().invoke(
        app, ["catalog", "--providers", "ovhcloud", "--gpus", "B200", "--json"], env=cli_env
    )
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout.splitlines()[0])["instance_type"] == "b200-2880"


def test_cli_json_reports_each_selected_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]
) -> None:
    def server_error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    timeouts = use_client(monkeypatch, {"api.ovh.com": server_error})
    args = ["catalog", "refresh", "--source", "ovhcloud,ecb", "--json", "--timeout", "2"]
    result = CliRunner().invoke(app, args, env=cli_env)
    assert result.exit_code == 0, result.output
    assert timeouts == [2.0]
    doc = json.loads(result.stdout)
    assert [(s["name"], s["status"]) for s in doc["sources"]] == [
        ("ovhcloud", "failed"),
        ("ecb", "ok"),
    ]
    assert doc["sources"][0]["error"] == "api.ovh.com answered HTTP 503"
    assert doc["snapshot"] == str(tmp_path / "catalog" / "snapshot.npz")


def test_cli_exits_3_and_writes_nothing_when_every_source_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]
) -> None:
    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("connect timed out", request=request)

    hosts = ("prices.azure.com", "api.ovh.com", "www.ecb.europa.eu")
    use_client(monkeypatch, dict.fromkeys(hosts, offline))
    result = CliRunner().invoke(app, ["catalog", "refresh"], env=cli_env)
    assert result.exit_code == 3
    assert "failed  timed out talking to prices.azure.com" in result.stdout
    assert "the shipped snapshot stays in use" in result.stderr
    assert not (tmp_path / "catalog").exists()


def test_cli_rejects_an_unknown_source(
    monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]
) -> None:
    use_client(monkeypatch)
    result = CliRunner().invoke(app, ["catalog", "refresh", "--source", "gcp"], env=cli_env)
    assert result.exit_code == 2
    assert "unknown refresh source gcp" in result.stderr


def test_the_real_client_gives_up_connecting_quickly() -> None:
    """Offline, a source fails within the connect timeout instead of hanging."""
    with cli_refresh._default_client(30.0) as client:
        assert client.timeout.connect == cli_refresh.CONNECT_TIMEOUT
        assert client.timeout.read == 30.0
    with cli_refresh._default_client(1.0) as client:
        assert client.timeout.connect == 1.0
