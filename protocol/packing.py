"""msgpack packing without building a packer per call.

``msgpack.packb(obj)`` constructs a new ``msgpack.Packer`` on every call, and each Packer
allocates its own 1 MiB buffer: on a node that packs four frames per message sent and a
blob per message stored, that constructor cost more than the packing itself (the broker's
py-spy profile put 13 % of its samples in ``packb``). :func:`packer` keeps one Packer
per thread instead; the bytes are the same as ``packb``'s with the same options.

A Packer is not thread-safe (it packs into its own buffer), hence one per thread: the
broker packs on its event loop and on its store's writer thread. After an exception (a
value msgpack cannot carry) a Packer resets its buffer, so the next call starts clean.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgpack


def packer(**options: Any) -> Callable[[Any], bytes]:
    """A function that packs like ``msgpack.packb(obj, **options)``, reusing one
    ``msgpack.Packer(**options)`` per thread."""
    local = threading.local()

    def pack(obj: Any) -> bytes:
        try:
            own: msgpack.Packer = local.packer
        except AttributeError:
            own = local.packer = msgpack.Packer(**options)
        data: bytes = own.pack(obj)
        return data

    return pack
