"""A model's README, from Markdown to HTML that is safe to put in a page."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

__all__ = ["render_markdown"]

# Links may leave the page but never run script; images may only be fetched over
# http(s) or be inline data.
_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> str:
    """CommonMark plus tables, rendered and then sanitized: the README is the model
    author's text, shown to everyone who may see the model, so raw HTML in it passes
    only through nh3's allow-list (no script, no event handlers, no ``javascript:``)."""
    html = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table").render(text)
    return nh3.clean(html, url_schemes=_SCHEMES, link_rel="noopener noreferrer nofollow")
