"""Untrusted text to safe HTML: Markdown rendered, then cleaned with an allow-list (nh3)."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "em",
    "strong",
    "b",
    "i",
    "u",
    "s",
    "del",
    "ins",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
    "span",
    "sup",
    "sub",
    "q",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "span": {"class"},
    "th": {"align"},
    "td": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # html=False: raw HTML in the source is shown as text, never passed through
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("table")


def sanitize_html(html: str) -> str:
    """Keep only harmless tags and attributes; links lose javascript:/data: and open safely."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


@lru_cache(maxsize=4096)
def render_markdown(text: str) -> str:
    """Chat text (Markdown, as models write it) as sanitized HTML."""
    return sanitize_html(_markdown().render(text))
