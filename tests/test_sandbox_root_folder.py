"""The folder a device's template mounts each worker's root on (device/sandbox.py): the
stale ones of templates killed before they could remove theirs are cleaned up without
tripping over a template starting beside this one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import device.sandbox as sandbox_module


def test_a_stale_root_folder_another_template_removed_first_is_no_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that a template starting beside another (``up --devices 2`` after a kill -9 of
    the last run, which left a root folder behind) goes on when the other removed that folder
    between its listing and its look at it; before, the template died with
    FileNotFoundError and ``up`` stopped (seen in a whole test run, tests/test_restart.py)."""
    gone = str(tmp_path / "cellbus-root-999999999")  # listed, then removed by the other
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sandbox_module, "stale", lambda parent, prefix: [gone])
    made = sandbox_module.Sandbox._make_root_folder()
    assert os.path.isdir(made) and os.path.basename(made) == f"cellbus-root-{os.getpid()}"
    os.rmdir(made)
