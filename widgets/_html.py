"""Small HTML pieces the views share: the page's CSS, number formatting, playground cards, tables."""

from __future__ import annotations

import html

import numpy as np

from embgeo.analysis import stylesheet

from ._options import BeforeAfter

#: The dashboard's own styles; the verdict cards' come with the analysis report stylesheet (css()).
CSS = """
<style>
.embgeo-error {color:#a00; background:#fee; border:1px solid #e99; padding:6px 10px; border-radius:4px}
.embgeo-note {color:#555; font-size:12px}
.embgeo-warning {color:#6b5200; background:#fff8e1; border:1px solid #eeca3b; padding:6px 10px; border-radius:4px}
.embgeo-card .ch {font-size:13px; font-weight:600}
table.embgeo-nn {border-collapse:collapse; font-size:12px} table.embgeo-nn td, table.embgeo-nn th {padding:1px 6px}
</style>
"""


def page_css() -> str:
    """The report stylesheet (verdict cards, tables) and the dashboard's own styles."""
    return f"<style>{stylesheet()}</style>{CSS}"


#: Non-zero values smaller than this in magnitude are shown with "(≈ 0)": a mean cosine of -4.2e-05
#: after centring is the -1/(n - 1) the centring leaves, read as zero, not as a number to compare.
NEAR_ZERO = 1e-3


def format_number(value) -> str:
    """A table cell: '-' for missing, thousands separators for integers, four significant digits
    otherwise, and tiny values marked as about zero (see :data:`NEAR_ZERO`)."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if not np.isfinite(value):
        return str(value)
    if 0 < abs(value) < NEAR_ZERO:
        return f"{value:.1e} (\u2248 0)"
    return f"{value:.4g}"


def format_change(value) -> str:
    """A change with its sign ('+0.12', '-3'), or '-' when there is none."""
    return "-" if value is None else ("+" if value > 0 else "") + format_number(value)


def before_after_html(card: BeforeAfter) -> str:
    e = html.escape
    return (f"<div class='embgeo-card info'><div class='t'>{e(card.title)}</div>"
            f"<div class='v'>{e(format_number(card.before))} &rarr; {e(format_number(card.after))}</div>"
            f"<div class='ch'>change {e(format_change(card.change))}</div>"
            f"<div class='m'>{e(card.meaning)}</div></div>")


def italic(text: str) -> str:
    return f"<i>{html.escape(text)}</i>"


def file_name(name: str, suffix: str) -> str:
    """A safe download name from a set's name: letters, digits, ``-`` and ``_`` kept, the rest ``_``."""
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name).strip("_") or "embeddings"
    return f"{stem[:60]}{suffix}"


def download_link(filename: str, payload: bytes, mime: str, label: str) -> str:
    """An ``<a download>`` carrying ``payload`` as a data URI: the browser saves it without a request
    to the server (Voila serves no files of a kernel's own)."""
    import base64

    data = base64.b64encode(payload).decode("ascii")
    return (f"<a download='{html.escape(filename, quote=True)}' href='data:{mime};base64,{data}' "
            f"class='embgeo-download' style='margin-right:12px'>{html.escape(label)}</a>")


def field_meaning(result, field: str) -> str:
    """A result field's plain-language meaning with its reference in parentheses, HTML-escaped."""
    meaning, reference = result.describe(field)
    return html.escape(f"{meaning} ({reference})" if reference else meaning)
