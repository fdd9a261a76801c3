"""The report's SVG plots under the console's Content-Security-Policy.

matplotlib writes its styles inline: a ``<style>`` element and ``style``
attributes, which the console's CSP (``style-src 'self'``) forbids, and the
browser would refuse them and log an error. Every property matplotlib writes
is also an SVG *presentation attribute*, which no CSP governs: :func:`strict`
rewrites the one into the other, so the drawing is the same. It also drops the
``id`` attributes nothing refers to: several plots on one page would
otherwise repeat ``figure_1``, ``axes_1``... (the ones referred to, clip paths
and markers, are salted with the plot's name by the drawing).
"""

from __future__ import annotations

import html
import re

#: the SVG presentation attributes matplotlib's inline styles use (SVG 1.1, 11-16)
PRESENTATION = frozenset(
    {
        "clip-path",
        "color",
        "display",
        "dominant-baseline",
        "fill",
        "fill-opacity",
        "fill-rule",
        "font-family",
        "font-size",
        "font-stretch",
        "font-style",
        "font-variant",
        "font-weight",
        "opacity",
        "stroke",
        "stroke-dasharray",
        "stroke-dashoffset",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-miterlimit",
        "stroke-opacity",
        "stroke-width",
        "text-anchor",
        "visibility",
    }
)

_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"')
_STYLE_ELEMENT = re.compile(r"<style[^>]*>\s*\*\s*\{([^}]*)\}\s*</style>")
_ID = re.compile(r'\sid="([^"]*)"')


class UnknownStyleError(ValueError):
    """A plot carries a style property that has no presentation attribute."""


def _attributes(declarations: str) -> str:
    out = []
    for declaration in declarations.split(";"):
        if not declaration.strip():
            continue
        name, _, value = declaration.partition(":")
        name, value = name.strip(), html.unescape(value.strip())
        if name not in PRESENTATION:
            raise UnknownStyleError(f"the plot's style {name!r} has no SVG attribute")
        quoted = html.escape(value, quote=False).replace('"', "&quot;")
        out.append(f' {name}="{quoted}"')
    return "".join(out)


def strict(figure: str) -> str:
    """``figure`` (a ``<figure>`` holding one matplotlib ``<svg>``) with no inline style and
    no unreferred ``id``; :class:`UnknownStyleError` for a property that has no attribute."""
    root = _STYLE_ELEMENT.search(figure)
    text = _STYLE_ELEMENT.sub("", figure)
    if root is not None:  # `*{...}` holds inherited properties: they go on the root
        text = text.replace("<svg", f"<svg{_attributes(root.group(1))}", 1)
    if "<style" in text:
        raise UnknownStyleError("the plot has a style sheet other than matplotlib's defaults")
    text = _STYLE_ATTRIBUTE.sub(lambda m: _attributes(m.group(1)), text)
    referred = set(re.findall(r'#([^"\s)]+)', text))
    return _ID.sub(lambda m: m.group(0) if m.group(1) in referred else "", text)
