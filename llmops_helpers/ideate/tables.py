"""Tables that show what matters whole: answers wrapped in full rather than cut at 50 characters with "…"."""

from __future__ import annotations

import math
from typing import Any

#: A text column is wrapped when some value in it is at least this long (ids and labels stay on one line).
WRAP_FROM_CHARS = 40


def full_text(frame: Any, wrap: list[str] | tuple[str, ...] | None = None, digits: int = 3) -> Any:
    """``frame`` as a styled table whose long text columns (answers, questions, truths) are shown in full and
    wrapped, left-aligned — the answers are the point of a comparison. ``wrap`` names the columns (default: any
    text column with a value of :data:`WRAP_FROM_CHARS` characters or more). Floats keep ``digits`` significant
    digits without an exponent, so a cost of $0.000124 stays visible; missing values show as "–". Returns a
    pandas ``Styler``: HTML in JupyterLab and in saved notebooks, and ``.data`` is the frame itself."""
    import pandas as pd

    if wrap is None:
        wrap = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, str) and len(v) >= WRAP_FROM_CHARS)
                .any()]
    else:
        missing = [c for c in wrap if c not in frame.columns]
        if missing:
            raise KeyError(f"full_text: no column {', '.join(map(repr, missing))} in this table; it has "
                           f"{', '.join(map(str, frame.columns))}.")

    def number(value: Any) -> Any:
        if not isinstance(value, float) or not math.isfinite(value):
            return value
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value)}"  # 54.0 tokens read as 54
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
        return f"{value:.{decimals}f}"  # 0.000124, 0.667, 5.03, 552: no exponent, small costs stay visible

    styler = frame.style.format(number, na_rep="–")
    short = [c for c in frame.columns if c not in wrap]
    if short:  # ids, labels and numbers stay on one line; the long text takes the width
        styler = styler.set_properties(subset=short, **{"white-space": "nowrap"})
    styler = styler.set_properties(subset=list(wrap), **{"white-space": "pre-wrap", "text-align": "left",
                                                         "min-width": "22em", "max-width": "46em"})
    if isinstance(frame.index, pd.RangeIndex):
        styler = styler.hide(axis="index")  # 0, 1, 2 ... says nothing
    return styler.set_table_styles([{"selector": "th", "props": [("text-align", "left")]},
                                    {"selector": "td", "props": [("vertical-align", "top")]}])
