"""session/history.py: the built-in session's answers to history_request, kind by kind."""

from __future__ import annotations

from session.history import History


def filled() -> History:
    history = History()
    for line, (code, out) in enumerate([("a = 1", None), ("a + 1", "2"), ("b = a", None),
                                        ("a + 1", "2")], start=1):
        history.add(line, code, out)
    return history


def test_tail_range_and_search() -> None:
    history = filled()
    assert history.reply({"hist_access_type": "tail", "n": 2}) == {
        "status": "ok", "history": [[1, 3, "b = a"], [1, 4, "a + 1"]]}
    assert history.reply({"hist_access_type": "tail", "n": 1, "output": True})["history"] \
        == [[1, 4, ["a + 1", "2"]]]
    got = history.reply({"hist_access_type": "range", "session": 0, "start": 2, "stop": 4})
    assert [e[1] for e in got["history"]] == [2, 3]
    assert [e[1] for e in history.reply({"hist_access_type": "range", "session": 1,
                                         "start": 3, "stop": 0})["history"]] == [3, 4]
    assert history.reply({"hist_access_type": "range", "session": 7, "start": 1,
                          "stop": 0})["history"] == []  # no earlier sessions
    got = history.reply({"hist_access_type": "search", "pattern": "a*"})
    assert [e[1] for e in got["history"]] == [1, 2, 4]
    got = history.reply({"hist_access_type": "search", "pattern": "a*", "unique": True})
    assert [e[1] for e in got["history"]] == [1, 4]
    got = history.reply({"hist_access_type": "search", "pattern": "a*", "n": 1})
    assert [e[1] for e in got["history"]] == [4]


def test_nonsense_gets_an_empty_history() -> None:
    history = filled()
    for content in ({}, {"hist_access_type": "everything"},
                    {"hist_access_type": "search", "pattern": 5},
                    {"hist_access_type": "tail", "n": -3}):
        assert history.reply(content) == {"status": "ok", "history": []}, content
    assert len(history.reply({"hist_access_type": "tail", "n": "ten"})["history"]) == 4
