"""Slurm hostlist expressions: ``t4-[01-03],a40-01`` <-> ``["t4-01", "t4-02", "t4-03", "a40-01"]``.

The same syntax names device files in gres.conf (``/dev/nvidia[0-3]``).  Pure functions, no I/O.

Rules (as Slurm reads them):

* a bracket holds comma-separated numbers and ``lo-hi`` ranges; every number of a range is written with the
  width of ``lo`` (``[01-10]`` is 01..10, ``[8-10]`` is 8, 9, 10);
* several brackets in one name multiply (``r[1-2]n[1-2]`` is r1n1, r1n2, r2n1, r2n2);
* a top-level comma separates names; commas inside brackets do not.

:func:`compress` only ranges the trailing number of a name and guarantees
``expand(compress(names)) == sorted(set(names))`` in that function's order.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
MAX_EXPANSION = 1_000_000  # a typo such as [1-99999999] must not eat the controller's memory


class HostlistError(ValueError):
    """A hostlist expression that cannot be read; the message names the expression and the problem."""


def _split_top_level(expr: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in expr:
        if ch == "[":
            depth += 1
            if depth > 1:
                raise HostlistError(f"{expr!r}: nested '[' is not allowed")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise HostlistError(f"{expr!r}: ']' without '['")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise HostlistError(f"{expr!r}: '[' without ']'")
    parts.append("".join(current))
    return parts


def _expand_bracket(expr: str, body: str) -> list[str]:
    out: list[str] = []
    for item in body.split(","):
        match = _RANGE.match(item.strip())
        if not match:
            raise HostlistError(f"{expr!r}: {item!r} is not a number or a lo-hi range")
        lo_text, hi_text = match.group(1), match.group(2)
        lo = int(lo_text)
        hi = int(hi_text) if hi_text is not None else lo
        if hi < lo:
            raise HostlistError(f"{expr!r}: range {item!r} runs backwards")
        if hi - lo + 1 > MAX_EXPANSION:
            raise HostlistError(f"{expr!r}: range {item!r} is larger than {MAX_EXPANSION} names")
        width = len(lo_text)
        out.extend(f"{n:0{width}d}" for n in range(lo, hi + 1))
    return out


def _expand_one(expr: str, name: str) -> list[str]:
    # Split "a[1-2]b[3]c" into literal and bracket pieces, then take their product.
    pieces: list[list[str]] = []
    rest = name
    while rest:
        start = rest.find("[")
        if start < 0:
            pieces.append([rest])
            break
        end = rest.index("]", start)  # balanced: checked by _split_top_level
        if start:
            pieces.append([rest[:start]])
        body = rest[start + 1 : end]
        if not body.strip():
            raise HostlistError(f"{expr!r}: empty brackets")
        pieces.append(_expand_bracket(expr, body))
        rest = rest[end + 1 :]
    total = 1
    for piece in pieces:
        total *= len(piece)
        if total > MAX_EXPANSION:
            raise HostlistError(f"{expr!r} names more than {MAX_EXPANSION} hosts")
    return ["".join(combo) for combo in itertools.product(*pieces)]


def expand(expr: str) -> list[str]:
    """Every name in a hostlist expression, in the order written (duplicates kept, as Slurm does)."""
    if not isinstance(expr, str):
        raise HostlistError(f"a hostlist must be a string, got {type(expr).__name__}")
    expr = expr.strip()
    if not expr:
        return []
    names: list[str] = []
    for part in _split_top_level(expr):
        part = part.strip()
        if not part:
            raise HostlistError(f"{expr!r}: empty name between commas")
        if any(ch.isspace() for ch in part):
            raise HostlistError(f"{expr!r}: {part!r} contains whitespace")
        names.extend(_expand_one(expr, part))
    return names


def _sort_key(name: str) -> tuple[str, int, int, str]:
    match = _TRAILING_NUMBER.match(name)
    if not match:
        return (name, -1, 0, name)
    return (match.group(1), int(match.group(2)), len(match.group(2)), name)


def compress(names: Iterable[str]) -> str:
    """The shortest-form hostlist of ``names`` (deduplicated and sorted by prefix, then number).

    Consecutive numbers that share a prefix become ``lo-hi`` ranges as long as every number keeps the
    written width of ``lo``: ``["n9", "n10"]`` -> ``n[9-10]``; ``["n1", "n02"]`` stays two entries.
    """
    unique = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise HostlistError(f"cannot compress {name!r}: names must be non-empty strings")
        if any(ch in name for ch in "[],") or any(ch.isspace() for ch in name):
            raise HostlistError(f"cannot compress {name!r}: brackets, commas and spaces are not allowed")
        unique.append(name)
    ordered = sorted(set(unique), key=_sort_key)

    groups: list[tuple[str, list[str]]] = []  # (prefix, [number texts]); a bare name has prefix only
    for name in ordered:
        match = _TRAILING_NUMBER.match(name)
        if not match:
            groups.append((name, []))
            continue
        prefix, number = match.group(1), match.group(2)
        if groups and groups[-1][1] and groups[-1][0] == prefix:
            groups[-1][1].append(number)
        else:
            groups.append((prefix, [number]))

    out = []
    for prefix, numbers in groups:
        if not numbers:
            out.append(prefix)
            continue
        ranges: list[tuple[str, str]] = []
        for text in numbers:
            if ranges:
                lo, hi = ranges[-1]
                if int(text) == int(hi) + 1 and f"{int(text):0{len(lo)}d}" == text:
                    ranges[-1] = (lo, text)
                    continue
            ranges.append((text, text))
        if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
            out.append(prefix + ranges[0][0])
        else:
            body = ",".join(lo if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)
            out.append(f"{prefix}[{body}]")
    return ",".join(out)
