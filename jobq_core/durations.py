"""Spans of time as people read them, for messages: '45 s', '3 h 2 min', '7 days'."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """A span for people, to two units at most: '45 s', '3 h 2 min', '7 days'.

    Rounded to the smaller unit shown, so 604,782 s (a week less 18 s) reads '7 days'."""
    units = ((86400, "day"), (3600, "h"), (60, "min"), (1, "s"))
    total = max(0, round(seconds))
    for i, (size, name) in enumerate(units[:-1]):
        small_size, small_name = units[i + 1]
        rounded = round(total / small_size) * small_size
        if rounded >= size:
            big, rest = divmod(rounded, size)
            return " ".join([_unit(big, name)] + ([_unit(rest // small_size, small_name)]
                                                   if rest else []))
    return f"{total} s"


def _unit(n: int, name: str) -> str:
    return f"{n} {name}{'s' if name == 'day' and n != 1 else ''}"
