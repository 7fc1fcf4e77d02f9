"""Has someone changed an owned object away from what the operator applied?

Pure. Modelled on apimachinery's ``equality.Semantic.DeepDerivative``: the
live object may carry more than the desired one (server defaults, other
controllers' fields), so only what the desired manifest sets is compared,
and quantities compare by value ("0.5" is "500m"). A false or empty desired
value also matches an absent live one, since the API drops such values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([KMGTPE]i|[numkMGTPE])?$")
_SUFFIX: dict[str | None, Decimal] = {
    None: Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{s + "i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")},
}


def differences(desired: Any, live: Any, path: str = "") -> list[str]:
    """Paths (like ``spec.replicas``) where ``live`` no longer derives from ``desired``."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [path or "."]
        return [
            found
            for key, value in desired.items()
            if key in live or not _empty(value)
            for found in differences(value, live.get(key), f"{path}.{key}" if path else key)
        ]
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [] if not desired and not live else [path]
        return [
            found
            for index, (mine, theirs) in enumerate(zip(desired, live, strict=True))
            for found in differences(mine, theirs, f"{path}[{index}]")
        ]
    return [] if _same_scalar(desired, live) else [path]


def _empty(value: Any) -> bool:
    return value is None or value is False or value in ("", 0, [], {})


def _same_scalar(desired: Any, live: Any) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    mine, theirs = _quantity(desired), _quantity(live)
    return mine is not None and mine == theirs


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    match = _QUANTITY.match(str(value))
    if not match:
        return None
    try:
        number: Decimal = Decimal(match.group(1)) * _SUFFIX[match.group(2)]
        return number
    except InvalidOperation:
        return None
