"""What runs inside a worker: one session's code execution and its output.

``worker`` (request loop and command line), ``backend`` (the session-backend interface),
``python`` (the built-in Python backend), ``capture`` (stdout/stderr as coalesced streams),
``blocks`` (the block API and file announcements), ``display`` (mimebundles and figures),
``mplbackend`` (matplotlib backend), ``interrupts`` (SIGINT handling).
"""
