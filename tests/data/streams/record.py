"""Record real iopub message streams from a cellbus device, for tests/test_fold.py.

Run from the repository root: ``.venv/bin/python tests/data/streams/record.py``. It starts a
device with a fresh key (as tests/conftest.py does), runs each snippet below in its own
session and writes ``<name>.json`` next to this file: a list of ``[seq, message]`` with
``seq`` = 1, 2, 3 ... in arrival order. The messages are kept as received (dates included)
except: ``buffers`` become base64 strings, and base64 image payloads longer than
:data:`MAX_PAYLOAD` characters are truncated to that many characters, to keep the files small.
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import BusClient, NodeProcess, free_port  # noqa: E402
from protocol.config import generate_key  # noqa: E402

#: Base64 image payloads are cut to this many characters in the recorded files.
MAX_PAYLOAD = 300
IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif")

SNIPPETS: dict[str, str] = {
    # seed 000's walk-through, in Python 3 with matplotlib
    "seed": ("import time\nimport matplotlib.pyplot as plt\nprint(2)\ntime.sleep(0.2)\n"
             "print(3)\nplt.plot([0, 1, 2, 3], [0, 1, 0, 1])\nplt.show()\nprint('hello')"),
    "interleaved": ("import sys\nprint('out 1', flush=True)\n"
                    "print('err 1', file=sys.stderr, flush=True)\n"
                    "print('err 2', file=sys.stderr, flush=True)\n"
                    "print('out 2', flush=True)"),
    "error": "print('before')\nx = 1\n1 / 0",
    "file": "open('a.txt', 'w').write('x')",
    "result": "1 + 1",
}


def clean(msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` as JSON-ready data: buffers base64, image payloads truncated."""
    out = dict(msg)
    out["buffers"] = [base64.b64encode(bytes(b)).decode("ascii") for b in msg.get("buffers") or ()]
    data = out.get("content", {}).get("data")
    if isinstance(data, dict):
        data = dict(data)
        for mime in IMAGE_MIMES:
            if isinstance(data.get(mime), str) and len(data[mime]) > MAX_PAYLOAD:
                data[mime] = data[mime][:MAX_PAYLOAD]
        out["content"] = {**out["content"], "data": data}
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "bus.key"
        key = generate_key(key_file)
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        client = BusClient(key, bind=endpoint)
        device = NodeProcess("device", "--connect", endpoint, "--key-file", str(key_file),
                             "--device-id", "dev-record")
        try:
            client.wait_for(lambda m: m["msg_type"] == "device_register", timeout=30)
            for name, code in SNIPPETS.items():
                msgs = client.run(code, f"record-{name}", timeout=60)
                stream = [[seq, clean(m)] for seq, m in enumerate(msgs, 1)]
                path = HERE / f"{name}.json"
                path.write_text(json.dumps(stream, indent=1, ensure_ascii=False) + "\n")
                print(f"{path.name}: {[m['msg_type'] for m in msgs]}")
        finally:
            device.stop()
            client.close()


if __name__ == "__main__":
    main()
