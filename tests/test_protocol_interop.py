"""Wire compatibility with jupyter_client (a test dependency only), both directions."""

from __future__ import annotations

import warnings

import pytest

from protocol import ProtocolError, Session

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from jupyter_client.session import Session as JupyterSession

KEY = b"shared-secret"


@pytest.fixture
def jupyter() -> JupyterSession:
    return JupyterSession(key=KEY, signature_scheme="hmac-sha256", packer="json")


def test_cellbus_to_jupyter(jupyter: JupyterSession) -> None:
    """A message serialized by protocol/ deserializes in jupyter_client with the same key."""
    ours = Session(KEY, packer="json")
    parent = ours.msg("execute_request", {"code": "print(2)"})
    msg = ours.msg("stream", {"name": "stdout", "text": "2\n"}, parent=parent,
                   metadata={"cellbus": {"seq": 1}})
    msg["buffers"] = [b"raw"]
    idents, rest = jupyter.feed_identities(ours.serialize(msg, [b"route"]))
    theirs = jupyter.deserialize(rest)
    assert idents == [b"route"]
    assert theirs["msg_id"] == msg["msg_id"]
    assert theirs["msg_type"] == "stream"
    assert theirs["content"] == {"name": "stdout", "text": "2\n"}
    assert theirs["parent_header"]["msg_id"] == parent["msg_id"]
    assert theirs["metadata"] == {"cellbus": {"seq": 1}}
    assert [bytes(b) for b in theirs["buffers"]] == [b"raw"]


def test_jupyter_to_cellbus(jupyter: JupyterSession) -> None:
    """A message serialized by jupyter_client deserializes in protocol/."""
    request = jupyter.msg("execute_request", {"code": "1+1", "silent": False})
    frames = jupyter.serialize(request, ident=[b"client"])
    idents, msg = Session(KEY, packer="json").deserialize(frames)
    assert idents == [b"client"]
    assert msg["msg_type"] == "execute_request"
    assert msg["content"]["code"] == "1+1"
    assert msg["header"]["session"] == jupyter.session


def test_jupyter_with_another_key_is_rejected() -> None:
    other = JupyterSession(key=b"not-the-key", signature_scheme="hmac-sha256")
    with pytest.raises(ProtocolError, match="signature"):
        Session(KEY, packer="json").deserialize(other.serialize(other.msg("status", {})))
