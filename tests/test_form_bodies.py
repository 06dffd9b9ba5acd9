"""Every POST route that reads a body takes a form as well as JSON (the README: "JSON or a
form"): ``curl -d value=x`` answers a prompt, a form makes a permalink, and a form interact
gets the answer its JSON twin gets."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from harness import Chain
from test_chain_input import ASK, text, wait_prompt

FORM = "application/x-www-form-urlencoded"


def post_form(chain: Chain, path: str, fields: dict[str, str]) -> tuple[int, Any]:
    return chain.http("POST", path, urllib.parse.urlencode(fields).encode(), content_type=FORM)


def test_a_form_answers_a_prompt(shared_chain: Chain) -> None:
    chain = shared_chain
    assert chain.evaluate("u/f/1", ASK)[0] == 202
    wait_prompt(chain, "u/f/1")
    assert post_form(chain, "/home/u/f/1/input", {"value": "Ada"}) == \
        (202, {"cell_id": "1", "status": "answered"})
    doc = chain.wait_done("u/f/1")
    assert text(doc) == "before\nName? Ada\nhi Ada\n"
    status, body = post_form(chain, "/home/u/f/1/input", {"value": "again"})
    assert status == 409 and "waits for no input" in body["error"], body  # as with JSON
    status, body = post_form(chain, "/home/u/f/1/input", {"other": "x"})
    assert status == 400 and "value" in body["error"], body


def test_a_form_makes_a_permalink(shared_chain: Chain) -> None:
    chain = shared_chain
    status, made = post_form(chain, "/permalink", {"code": "print(1)",
                                                   "interact": '{"x": 2}'})
    assert status == 201, made
    assert chain.http("GET", f"/permalink/{made['id']}")[1] == \
        {"id": made["id"], "code": "print(1)", "interact": {"x": 2}}
    status, body = post_form(chain, "/permalink", {"code": "1", "interact": "{"})
    assert status == 400 and "'interact' must be JSON" in body["error"], body


def test_a_form_interact_is_answered_as_its_json_twin(shared_chain: Chain) -> None:
    chain = shared_chain
    assert chain.evaluate("u/f/2", "print(2)")[0] == 202
    chain.wait_done("u/f/2")
    fields = {"interact_id": "nope", "values": '{"x": 1}', "state": "1"}
    as_json = chain.http("POST", "/home/u/f/2/interact", json.dumps(
        {"interact_id": "nope", "values": {"x": 1}, "state": 1}).encode())
    as_form = post_form(chain, "/home/u/f/2/interact", fields)
    for status, body in (as_json, as_form):  # the same answer: the broker judges the id
        assert status == 404 and "no interact nope in cell 2" in body["error"], \
            (as_form, as_json)
    assert as_form == as_json


def test_json_sent_as_a_form_is_read_as_json(shared_chain: Chain) -> None:
    """``curl -d '{"input": ...}'`` sends JSON labelled as a form: it is read as the JSON it
    is, so the new input runs (it was a form of one field, and an evaluate without input
    ran the cell's stored input again, or answered 404 for a cell that never ran)."""
    chain = shared_chain
    for code in ("print('old')", "print('new')"):
        status, body = chain.http("POST", "/home/u/f/3/evaluate",
                                  json.dumps({"input": code}).encode(), content_type=FORM)
        assert status == 202, body
        doc = chain.wait_done("u/f/3")
        assert doc["input"] == code and text(doc) == code[7:10] + "\n", doc
    status, body = chain.http("POST", "/home/u/f/3/interact", b' {"interact_id": 1}',
                              content_type=FORM)
    assert status == 400 and "interact_id" in body["error"], body  # judged as the JSON it is
