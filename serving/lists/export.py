"""A list's rows as JSON records and as CSV text that is safe to open in a spreadsheet."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: CSV cells starting with these would be read as a formula by a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with text cells that a spreadsheet would run as a formula prefixed by ``'``.

    A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return
    (CSV injection, OWASP) gets a leading apostrophe; numbers stay numbers.
    """
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            continue
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_STARTS).fillna(False).to_numpy(dtype=bool)
        if risky.any():
            out[column] = values.astype("object").where(~risky, "'" + text.astype("object"))
    return out


def list_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A list as JSON-ready records (missing values as ``None``)."""
    clean = frame.astype("object").where(frame.notna(), None)
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in clean.to_dict(orient="records")
    ]


def list_csv(frame: pd.DataFrame) -> str:
    """A list as CSV text (header = the list's column names), safe to open in a spreadsheet.

    Lines end in CRLF (RFC 4180), so a cell holding a carriage return is quoted
    like one holding a newline.
    """
    return spreadsheet_safe(frame).to_csv(index=False, lineterminator="\r\n")
