"""``POST /permalink`` of code someone shared already: the answer says the link exists (200,
``"created": false``) and whether the asker may delete it (``"deletable"``), and ``DELETE``
agrees with it. Before, a second user sharing the same code got ``201 Created`` for a link
that was not theirs, and a 403 when they deleted "their" link."""

from __future__ import annotations

from access_util import add_user, bearer, call
from harness import Chain
from test_permalinks import make

CODE = "print('shared twice')"


def test_a_link_shared_again_says_it_exists_and_whose_to_delete(chain: Chain) -> None:
    """Tests that ann's first share is 201 created and deletable by her, that bob's share of
    the same code is 200, not created and not deletable by him (his DELETE is 403, as it
    said), that ann's second share is 200 and still hers, that her DELETE is 200, and that
    bob's share after it makes a link of his own (201, deletable, and his DELETE works)."""
    ann, bob = bearer(add_user(chain, "ann")), bearer(add_user(chain, "bob"))
    chain.start_broker()
    chain.start_gateway("--auth", "token")
    status, first = make(chain, CODE, ann)
    assert status == 201, first
    pid = first["id"]
    assert first == {"id": pid, "url": f"/?q={pid}", "created": True, "deletable": True}

    assert make(chain, CODE, bob) == (200, {**first, "created": False, "deletable": False})
    refused = call(chain.port, "DELETE", f"/permalink/{pid}", headers=bob)
    assert refused.status == 403 and "only the user who made" in refused.body["error"]
    assert make(chain, CODE, ann) == (200, {**first, "created": False})

    assert call(chain.port, "DELETE", f"/permalink/{pid}", headers=ann).status == 200
    assert call(chain.port, "GET", f"/permalink/{pid}", headers=bob).status == 404
    assert make(chain, CODE, bob) == (201, first)  # now bob's own
    deleted = call(chain.port, "DELETE", f"/permalink/{pid}", headers=bob)
    assert (deleted.status, deleted.body) == (200, {"deleted": pid})
