"""Figures in few characters, the same in the headless lines and the app: a throughput, a
duration, an amount of memory. An unknown figure (None) shows as a dash."""

from __future__ import annotations

UNKNOWN = "-"


def rate(per_second: float | None) -> str:
    """12, 950, 12.3k, 123k, 1.2M: at most 5 characters."""
    if per_second is None:
        return UNKNOWN
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if per_second >= scale:
            value = per_second / scale
            return f"{value:.1f}{suffix}" if round(value, 1) < 100 else f"{value:.0f}{suffix}"
    return f"{per_second:.0f}"


def clock(seconds: float | None) -> str:
    """0:07, 12:34, 1:02:03; past a day 2d03h."""
    if seconds is None:
        return UNKNOWN
    s = int(round(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}:{minutes:02d}:{s:02d}"
    return f"{minutes}:{s:02d}"


def mebibytes(mib: float | None) -> str:
    """312M, 1.2G, 12G: at most 4 characters (binary units: M is MiB, G is GiB)."""
    if mib is None:
        return UNKNOWN
    if mib >= 999.5:
        gib = mib / 1024
        return f"{gib:.1f}G" if round(gib, 1) < 10 else f"{gib:.0f}G"
    return f"{mib:.0f}M"


def percent(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:.0f}%"
