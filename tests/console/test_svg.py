"""A plot's inline styles become presentation attributes, so the console's CSP (no inline
style) draws it unchanged; ids nothing refers to are dropped."""

from __future__ import annotations

import pytest

from archipel.console._svg import UnknownStyleError, strict


@pytest.mark.parametrize(
    ("drawn", "shown"),
    [
        pytest.param(
            '<svg><path style="fill: #ffffff; opacity: 0.8"/></svg>',
            '<svg><path fill="#ffffff" opacity="0.8"/></svg>',
            id="a style attribute",
        ),
        pytest.param(
            "<svg><text style=\"font-size: 8px; font-family: 'DejaVu Sans', sans-serif\">x</text></svg>",
            '<svg><text font-size="8px" font-family="\'DejaVu Sans\', sans-serif">x</text></svg>',
            id="a font list keeps its quotes",
        ),
        pytest.param(
            '<svg><defs><style type="text/css">*{stroke-linejoin: round; stroke-linecap: butt}'
            "</style></defs><path/></svg>",
            '<svg stroke-linejoin="round" stroke-linecap="butt"><defs></defs><path/></svg>',
            id="matplotlib's sheet goes on the root",
        ),
        pytest.param(
            '<svg><g id="axes_1"><path id="p1" clip-path="url(#c9)"/></g>'
            '<clipPath id="c9"/><use xlink:href="#m2"/><path id="m2"/></svg>',
            '<svg><g><path clip-path="url(#c9)"/></g><clipPath id="c9"/><use xlink:href="#m2"/>'
            '<path id="m2"/></svg>',
            id="only referred ids stay",
        ),
    ],
)
def test_styles_become_attributes(drawn: str, shown: str) -> None:
    assert strict(drawn) == shown


@pytest.mark.parametrize(
    "drawn",
    [
        pytest.param('<svg><path style="mix-blend-mode: multiply"/></svg>', id="unknown property"),
        pytest.param("<svg><style>path{fill: red}</style></svg>", id="another sheet"),
    ],
)
def test_a_style_without_an_attribute_is_refused(drawn: str) -> None:
    with pytest.raises(UnknownStyleError):
        strict(drawn)
