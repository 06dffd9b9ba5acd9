"""A device relays answers to prompts: to the one session named, once, only while it waits."""

from __future__ import annotations

from harness import stdout_of


def test_answers_reach_only_their_waiting_session_once(device_with_client) -> None:
    client, device = device_with_client()
    first = client.execute("print('s1', input('a? '))", "s1")
    second = client.execute("print('s2', input('b? '))", "s2")
    for request in (first, second):
        client.wait_for(lambda m, r=request: m["msg_type"] == "input_request"
                        and m["parent_header"]["msg_id"] == r["msg_id"])
    client.request("input_reply", {"value": "answer-two"}, "s2")
    assert stdout_of(client.replies_to(second)) == "b? answer-two\ns2 answer-two\n"
    assert not [m for m in client.about.get(first["msg_id"], [])
                if m["msg_type"] != "input_request" and m["msg_type"] != "status"
                and m["msg_type"] != "execute_input"]  # s1 still waits, untouched
    client.request("input_reply", {"value": "answer-one"}, "s1")
    client.request("input_reply", {"value": "answer-late"}, "s1")  # nothing waits: dropped
    client.request("input_reply", {"value": 5}, "s2")  # not a string: dropped
    assert stdout_of(client.replies_to(first)) == "a? answer-one\ns1 answer-one\n"
    device.wait_for_log(r"an answer for session s1 came while it waited for none")
    assert stdout_of(client.run("print(1)", "s1")) == "1\n"  # the late answer read nothing
    assert "answer-" not in device.log
