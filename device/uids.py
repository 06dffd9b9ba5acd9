"""Session uids: which a device may hand out, and which of them each live worker holds."""

from __future__ import annotations

DEFAULT_UIDS = "300000-300999"


def parse_uids(text: str) -> range:
    """``"300000-300999"`` -> range(300000, 301000); ValueError if it is not a sane range."""
    low, sep, high = text.partition("-")
    first, last = int(low), int(high if sep else low)
    if not 1000 <= first <= last < 2 ** 32 - 1:
        raise ValueError(f"uid range {text!r}: give FIRST-LAST, both at least 1000")
    return range(first, last + 1)


class UidPool:
    """The session uids of one template: each live worker holds one no other worker has."""

    def __init__(self, uids: range) -> None:
        self.free = list(reversed(uids))
        self.held: set[int] = set()

    def take(self) -> int:
        if not self.free:
            raise OSError(f"all {len(self.held)} session uids are in use (--sandbox-uids)")
        uid = self.free.pop()
        self.held.add(uid)
        return uid

    def give_back(self, uid: int) -> None:
        if uid in self.held:
            self.held.discard(uid)
            self.free.append(uid)
