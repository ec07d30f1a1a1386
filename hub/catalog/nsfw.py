"""NSFW levels, as Civitai's browsing levels: PG=1, PG-13=2, R=4, X=8.

Each level is one bit, so a set of levels is a bitmask (Civitai's
`browsingLevel`). A viewer's preference is the highest level they want to
see; everything up to it is allowed. Anonymous viewers see PG only.
"""
from __future__ import annotations

from django.db import models


class NsfwLevel(models.IntegerChoices):
    PG = 1, "PG"
    PG13 = 2, "PG-13"
    R = 4, "R"
    X = 8, "X"


ALL_LEVELS_MASK = 15
ANONYMOUS_LEVEL = NsfwLevel.PG


def mask_upto(level: int) -> int:
    """The bitmask of every level up to and including `level`."""
    return (int(level) << 1) - 1


def levels_in(mask: int) -> list[int]:
    return [level for level in NsfwLevel.values if mask & level]


def level_label(level: int) -> str:
    try:
        return NsfwLevel(level).label
    except ValueError:
        return str(level)


def viewer_level(user) -> int:
    """The highest level a viewer has chosen to see (PG for anonymous viewers)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS_LEVEL
    return int(getattr(user, "browsing_level", ANONYMOUS_LEVEL) or ANONYMOUS_LEVEL)


def viewer_may_reveal(user) -> bool:
    """Signed-in viewers who opted in may click a blurred image to see it."""
    return bool(user is not None and getattr(user, "is_authenticated", False) and getattr(user, "reveal_blurred", False))


def parse_level(value) -> int | None:
    """A level given as a number (1, 2, 4, 8) or a name (PG, PG-13, R, X); None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in NsfwLevel.values else None
    if isinstance(value, str):
        text = value.strip().upper().replace("_", "-")
        if text.isdigit():
            return parse_level(int(text))
        for level in NsfwLevel:
            if level.label.upper() == text or level.name == text.replace("-", ""):
                return int(level)
    return None
