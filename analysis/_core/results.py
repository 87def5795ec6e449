"""Small frozen result objects that explain themselves in a notebook.

Every report in embgeo is a frozen dataclass deriving from :class:`Result`. A field may carry, in its
``metadata``, a plain-language ``meaning`` and a ``reference`` (paper, year); both show in the text and
HTML reprs, so a number never appears without what it means. ``to_dict()`` returns JSON-safe data:
NumPy scalars become Python numbers, arrays become lists, NaN and inf become ``None``.

Use :func:`metric` to declare such a field::

    @dataclass(frozen=True, repr=False)
    class MyReport(Result):
        skewness: float = metric("Skewness of the k-occurrence distribution.", "Radovanovic et al., 2010")
        k_occurrence: np.ndarray = metric("N_k of every point.", summary=False)  # too large for JSON
        table: object = hidden()  # kept for further analysis, shown nowhere

A field declared with ``summary=False`` (one value per point, say) shows in the reprs but stays out of
``to_dict()``; a :func:`hidden` field stays out of both.
"""

from __future__ import annotations

import dataclasses
import html
import math
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

#: Arrays longer than this are summarised, not listed, in the text and HTML reprs.
_REPR_ARRAY_ITEMS = 8


def metric(meaning: str = "", reference: str = "", *, default: Any = dataclasses.MISSING, summary: bool = True,
           **kwargs) -> Any:
    """A dataclass field with a plain-language ``meaning`` and a ``reference``.

    ``summary=False`` leaves the field out of ``to_dict()`` (per-point arrays) but keeps it in the reprs.
    """
    md = {"meaning": meaning, "reference": reference, "summary": summary}
    if default is dataclasses.MISSING and "default_factory" not in kwargs:
        return dataclasses.field(metadata=md, **kwargs)
    return dataclasses.field(default=default, metadata=md, **kwargs)


def hidden(default: Any = None) -> Any:
    """A field kept on the object for further analysis but left out of the reprs and of ``to_dict()``."""
    return dataclasses.field(default=default, metadata={"hidden": True, "summary": False})


def in_summary(f: dataclasses.Field) -> bool:
    """Whether ``to_dict()`` includes field ``f``."""
    return f.metadata.get("summary", True) and not f.metadata.get("hidden")


def to_jsonable(value: Any) -> Any:
    """Convert results, NumPy values and containers into JSON-safe Python objects."""
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame
        return to_jsonable(value.to_dict(orient="records"))
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def format_value(value: Any) -> str:
    if isinstance(value, Result):
        return f"<{type(value).__name__}>"
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            return str(f)
        return f"{f:.4g}"
    if isinstance(value, np.ndarray):
        if value.size <= _REPR_ARRAY_ITEMS:
            return np.array2string(value, precision=4, separator=", ")
        return f"array{value.shape} {value.dtype}"
    if isinstance(value, (list, tuple)) and len(value) > _REPR_ARRAY_ITEMS:
        return f"[{len(value)} items]"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(format_value(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    if hasattr(value, "shape") and hasattr(value, "columns"):
        return f"table {value.shape[0]} rows x {value.shape[1]} columns"
    return repr(value)


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The CSS of every result's HTML repr and of the verdict cards (package data, read once)."""
    return resources.files("embgeo.analysis").joinpath("static/report.css").read_text(encoding="utf-8")


class Result:
    """Mixin for frozen dataclass results: ``to_dict()``, a text repr and an HTML repr."""

    #: One line that says what the whole result is; subclasses override.
    _title: str = ""

    def to_dict(self) -> dict:
        """The result as JSON-safe nested dicts and lists (per-point and hidden fields left out)."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self) if in_summary(f)}

    @classmethod
    def describe(cls, name: str) -> tuple[str, str]:
        """The plain-language meaning and the reference of field ``name``, as the reprs show them.

        Examples
        --------
        >>> from embgeo.analysis import HubnessReport
        >>> HubnessReport.describe("robin_hood")[1]
        'Feldbauer et al., 2018'
        """
        for f in dataclasses.fields(cls):
            if f.name == name and not f.metadata.get("hidden"):
                return f.metadata.get("meaning", ""), f.metadata.get("reference", "")
        raise KeyError(f"{cls.__name__} has no field {name!r}")

    def _rows(self):
        for f in dataclasses.fields(self):
            if f.name.startswith("_") or f.metadata.get("hidden"):
                continue
            yield f, getattr(self, f.name)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}" + (f": {self._title}" if self._title else "")]
        nested = []
        for f, value in self._rows():
            if isinstance(value, Result):
                nested.append((f.name, value))
                continue
            meaning = f.metadata.get("meaning", "")
            lines.append(f"  {f.name:<28} {format_value(value):<14}" + (f"  # {meaning}" if meaning else ""))
        for name, value in nested:
            inner = repr(value).splitlines()
            lines.append(f"  {name}: {inner[0]}")
            lines.extend("  " + line for line in inner[1:])
        return "\n".join(lines)

    def _html_body(self) -> str:
        rows, sections = [], []
        for f, value in self._rows():
            if isinstance(value, Result):
                sections.append(
                    f"<details class='embgeo-section' open><summary>{html.escape(f.name)}</summary>"
                    f"{value._html_body()}</details>"
                )
                continue
            meaning = html.escape(f.metadata.get("meaning", ""))
            ref = html.escape(f.metadata.get("reference", ""))
            rows.append(
                f"<tr><th>{html.escape(f.name)}</th><td class='embgeo-value'>{html.escape(format_value(value))}</td>"
                f"<td class='embgeo-meaning'>{meaning}{f' <span class=embgeo-ref>({ref})</span>' if ref else ''}</td></tr>"
            )
        table = f"<table class='embgeo-table'>{''.join(rows)}</table>" if rows else ""
        return table + "".join(sections)

    def _repr_html_(self) -> str:
        title = html.escape(type(self).__name__ + (f": {self._title}" if self._title else ""))
        return (
            f"<style>{stylesheet()}</style><div class='embgeo-result'><div class='embgeo-title'>{title}</div>"
            f"{self._html_body()}</div>"
        )
