"""protocol.recent: bounded maps that forget their oldest entries."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from protocol.errors import ProtocolError
from protocol.recent import forget_oldest
from protocol.wire import Session

KEY = b"k" * 32


def test_forget_oldest_keeps_the_newest_in_order() -> None:
    entries: OrderedDict[int, str] = OrderedDict((i, str(i)) for i in range(10))
    forget_oldest(entries, 4)
    assert list(entries.items()) == [(6, "6"), (7, "7"), (8, "8"), (9, "9")]
    forget_oldest(entries, 4)  # nothing over: nothing goes
    assert list(entries) == [6, 7, 8, 9]
    forget_oldest(entries, 0)
    assert not entries


def test_a_replay_window_long_past_its_size_still_refuses_the_newest_and_forgets_the_oldest(
) -> None:
    """Many times its size through the window (where evictions pile up), the window still
    holds exactly the newest signatures: a replay of any of them is refused, and the one
    just before them is accepted again."""
    s = Session(KEY, replay_history=50)
    sent = [s.serialize(s.msg("status", {"n": i})) for i in range(1000)]
    for frames in sent:
        s.deserialize(frames)
    assert len(s._seen) == 50
    for frames in sent[-50:]:
        with pytest.raises(ProtocolError, match="already seen"):
            s.deserialize(frames)
    s.deserialize(sent[-51])  # forgotten: accepted again (and now remembered)
