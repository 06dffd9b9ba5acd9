"""Build the namespace init the sandbox execs in each session (device/init.c).

``bin/_venv`` runs it after installing into ``.venv``, and the tests for the interpreter they
run under; ``python -m cellbus.init_program`` does it for any environment cellbus is
installed in. The program goes to ``<sys.prefix>/libexec/cellbus-init``, where the device
looks (:func:`device.sandbox.default_init_program`). Without a C compiler nothing is built and
the device keeps a Python init, about 2 MB more per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

#: Mode 0711: the session uids may run it but not read it, so it is never dumpable.
MODE = 0o711


def source() -> Path:
    """device/init.c, in a checkout or an installed ``device`` package."""
    import device
    return Path(device.__file__).resolve().parent / "init.c"


def target(prefix: str = sys.prefix) -> Path:
    return Path(prefix) / "libexec" / "cellbus-init"


def build(prefix: str = sys.prefix) -> str | None:
    """Compile the init into ``prefix`` unless an up-to-date one is there; its path, or None
    (and why, on stderr) when there is no compiler or the build fails."""
    src, out = source(), target(prefix)
    if (out.is_file() and out.stat().st_mtime >= src.stat().st_mtime
            and out.stat().st_mode & 0o7777 == MODE):
        return str(out)
    cc = shutil.which("cc")
    if cc is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        subprocess.run([cc, "-O2", "-Wall", "-Werror", "-o", str(tmp), str(src)], check=True,
                       stdout=sys.stderr)
        os.chmod(tmp, MODE)
        os.replace(tmp, out)
    except (OSError, subprocess.CalledProcessError) as e:
        tmp.unlink(missing_ok=True)
        print(f"cellbus: could not build {out} ({e}); sessions keep a Python init",
              file=sys.stderr)
        return None
    return str(out)


if __name__ == "__main__":
    sys.exit(0 if build() else 1)
