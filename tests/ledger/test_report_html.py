"""The HTML report: one page that loads nothing, parses, and embeds its plots as SVG."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from archipel.core import Concentration
from archipel.ledger._report import Report, build_report
from archipel.ledger._report_html import render_html

from .report_fixtures import (
    LAW,
    RATES,
    ROWS,
    Budget,
    Burn,
    Commitment,
    Forecast,
    Period,
    Spec,
    facts,
    ledger_frame,
)

SPEC = Spec(
    commitments=(
        Commitment(
            "aws",
            Decimal(2400),
            "USD",
            Period(date(2026, 1, 1), date(2027, 1, 1)),
            "aws-2026",
            (Decimal(2000),),
        ),
    ),
    budgets=(
        Budget(
            "research", Decimal(500), "USD", "month", tenant="research", alert_at=(Decimal("0.5"),)
        ),
    ),
    concentration=Concentration(max_share=0.6, measure="spend"),
)
#: tags that would fetch something or run something
FETCHING = {
    "script",
    "link",
    "img",
    "iframe",
    "object",
    "embed",
    "video",
    "audio",
    "source",
    "image",
    "base",
    "frame",
    "track",
}


class Page(HTMLParser):
    """Every start tag with its attributes, and the text, of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _report(rows: list[tuple[object, ...]] = ROWS, spec: Spec = SPEC) -> Report:
    return build_report(
        ledger_frame(rows),  # type: ignore[arg-type]
        spec,
        currency="USD",
        rates=RATES,
        jurisdictions=LAW,
        provider_facts=facts,
        today=date(2026, 2, 20),
        generated_at=datetime(2026, 2, 20, 9, 30, tzinfo=UTC),
        burn_down=_burn_down,
    )


def _burn_down(_con: object, spec: Spec, *, rates: object, today: date) -> list[Burn]:
    """The contract's shape: two months burned, a forecast band to the end of the term."""
    months = [date(2026, 1, 1), date(2026, 2, 1)]
    band = Forecast(
        months=[date(2026, 3, 1), date(2026, 12, 1)],
        mean=[Decimal(1200), Decimal(2100)],
        low=[Decimal(1100), Decimal(1800)],
        high=[Decimal(1300), Decimal(2500)],
        level=0.8,
        at_end=(Decimal(2100), Decimal(1800), Decimal(2500)),
        method="linear",
    )
    return [
        Burn(c, c.currency, months, [Decimal(400), Decimal(800)], c.amount, band)
        for c in spec.commitments
    ]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(_report())


def test_the_page_parses_and_is_one_document(page: str) -> None:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    names = [t for t, _ in parsed.tags]
    assert page.startswith("<!DOCTYPE html>")
    assert names.count("html") == names.count("head") == names.count("body") == 1
    assert names.count("style") == 1 + names.count("svg")  # the page's, and each plot's own


def test_the_page_loads_nothing(page: str) -> None:
    parsed = Page()
    parsed.feed(page)
    assert not FETCHING & {t for t, _ in parsed.tags}
    assert not re.search(r"https?:|//[a-z]", page, re.I)  # no URL at all, not even a namespace
    for tag, attrs in parsed.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), f"<{tag} {name}>: a script handler"
            if name in ("href", "xlink:href", "src"):
                assert value is not None and value.startswith("#"), f"<{tag} {name}={value}>"
    css = page[page.index("<style>") : page.index("</style>")]
    assert "url(" not in css and "@import" not in css


def test_the_plots_are_inline_svg(page: str) -> None:
    parsed = Page()
    parsed.feed(page)
    svgs = [t for t, _ in parsed.tags if t == "svg"]
    # monthly spend, one commitment, concentration, jurisdiction, top workloads, top tenants
    assert len(svgs) == 6
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_the_header_says_the_period_totals_and_alerts(page: str) -> None:
    parsed = Page()
    parsed.feed(page)
    text = " ".join(parsed.text)
    assert "2026-01-10 to 2026-03-05" in text
    assert "1,300.00 USD" in text
    assert "generated 2026-02-20 09:30 UTC" in text
    assert "aws holds 61.5% of spend, above the cap of 60.0%" in text
    assert "budget research: spent 400.00 USD this month from 2026-02-01: 80% of 500.00 USD" in text
    assert "84.6%" in text  # CLOUD Act-exposed share of spend


def test_names_from_the_ledger_are_escaped() -> None:
    rows = [("aws", "US", "<script>x</script>", "p", "w&<b>", "2026-01-01", 1, 0, 0, "1", "USD")]
    page = render_html(_report(rows, Spec()))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "w&amp;&lt;b&gt;" in page


def test_an_empty_ledger_still_makes_a_page() -> None:
    page = render_html(_report([], Spec()))
    assert "The ledger has no entries" in page
    assert "<svg" not in page
