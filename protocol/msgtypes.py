"""Message type names used on the bus, in one place (as MDP.py does for Majordomo)."""

from __future__ import annotations

PROTOCOL_VERSION = "5.4"
DELIM = b"<IDS|MSG>"

# Shell: requests that ask a session to do something, and their replies.
EXECUTE_REQUEST = "execute_request"
EXECUTE_REPLY = "execute_reply"
INTERRUPT_REQUEST = "interrupt_request"
INTERRUPT_REPLY = "interrupt_reply"
SHUTDOWN_REQUEST = "shutdown_request"
SHUTDOWN_REPLY = "shutdown_reply"
KERNEL_INFO_REQUEST = "kernel_info_request"
KERNEL_INFO_REPLY = "kernel_info_reply"
INTERACT_REQUEST = "interact_request"
INTERACT_REPLY = "interact_reply"
# Stdin (Jupyter's names): a session asks for a line with ``input_request`` {"prompt",
# "password"}, stored as output with its seq; the answer comes back as ``input_reply``
# {"value"}, a request that is never stored (a password must not be), to that session only.
INPUT_REQUEST = "input_request"
INPUT_REPLY = "input_reply"
#: Largest answer to a prompt, in UTF-8 bytes (the gateway says 413 past it).
MAX_INPUT_REPLY = 64 * 1024
#: The value of an ``input_reply`` that means end of file (Ctrl-D; ipykernel's convention):
#: the device sends it, with an ``error`` saying why, when a prompt outlives --input-timeout.
INPUT_EOF = "\x04"
#: A ``stream``'s metadata key, true on the stdout line that echoes a prompt and its answer
#: (a password's without it) after ``input()``: the page's stored output reads like a
#: terminal session, while Jupyter clients, which show the prompt and the answer themselves
#: (JupyterLab's stdin line), are not sent it.
STDIN_ECHO = "cellbus_stdin_echo"
# Comms (Jupyter's names), for Jupyter-kernel sessions: the kernel's comm_open, comm_msg and
# comm_close are output like any other; a client's (and its comm_info_request, which the
# kernel answers with comm_info_reply) go to that session only, never stored.
COMM_OPEN = "comm_open"
COMM_MSG = "comm_msg"
COMM_CLOSE = "comm_close"
COMM_INFO_REQUEST = "comm_info_request"
COMM_INFO_REPLY = "comm_info_reply"
#: What a client may send a session's comms: each ends at the session's idle status.
COMM_REQUEST_TYPES = frozenset({COMM_OPEN, COMM_MSG, COMM_CLOSE, COMM_INFO_REQUEST})
# What a client asks about code (Jupyter's names): completions, an object's help, whether the
# code is complete. They go the way of a client's comm messages (to the session only, never
# stored, queued behind its running cell, ending at its idle), and the session's reply is
# output like comm_info_reply: stored with its seq and delivered to that client.
COMPLETE_REQUEST = "complete_request"
COMPLETE_REPLY = "complete_reply"
INSPECT_REQUEST = "inspect_request"
INSPECT_REPLY = "inspect_reply"
IS_COMPLETE_REQUEST = "is_complete_request"
IS_COMPLETE_REPLY = "is_complete_reply"
#: The session's input history (a Jupyter console's Up arrow, JupyterLab's requestHistory).
HISTORY_REQUEST = "history_request"
HISTORY_REPLY = "history_reply"
#: Each query and the type of its reply.
QUERY_REPLIES = {COMPLETE_REQUEST: COMPLETE_REPLY, INSPECT_REQUEST: INSPECT_REPLY,
                 IS_COMPLETE_REQUEST: IS_COMPLETE_REPLY, HISTORY_REQUEST: HISTORY_REPLY}
QUERY_REQUEST_TYPES = frozenset(QUERY_REPLIES)
#: What a client sends a session's kernel directly: comm messages and queries.
KERNEL_REQUEST_TYPES = COMM_REQUEST_TYPES | QUERY_REQUEST_TYPES
#: Largest content of a client's comm message, in bytes packed (413 past it).
MAX_COMM_MESSAGE = 1024 * 1024

# IOPub: what a session says while it works.
STATUS = "status"
EXECUTE_INPUT = "execute_input"
STREAM = "stream"
DISPLAY_DATA = "display_data"
#: A new bundle for the displays of a ``transient.display_id`` (a Jupyter kernel's
#: ``handle.update``): Jupyter clients replace those displays and add none; the page and
#: the notebook download show it as one more display.
UPDATE_DISPLAY_DATA = "update_display_data"
EXECUTE_RESULT = "execute_result"
ERROR = "error"
CLEAR_OUTPUT = "clear_output"
INTERACT_START = "interact_start"
INTERACT_END = "interact_end"

# Bus control between nodes (same message shape, cellbus-only types).
DEVICE_REGISTER = "device_register"
DEVICE_HEARTBEAT = "device_heartbeat"
SESSION_STARTED = "session_started"
#: Device -> broker: {session, reason}, the device ended that session's worker. Broker ->
#: device: the broker took the device for lost (silent past its heartbeat expiry) and ended
#: that session's requests itself; the device, heard again, ends the worker without a reply.
SESSION_CLOSED = "session_closed"
BROKER_HEARTBEAT = "broker_heartbeat"
#: Broker -> a device or gateway whose CURVE key was revoked: {key}. It disconnects and stops.
BUS_REVOKED = "bus_revoked"
#: Device -> broker when it stops (SIGTERM): {device, returned: [msg_id], running: [msg_id],
#: final: bool}. It takes no new work from then on; ``returned`` are requests it holds but
#: never started, handed back to be placed elsewhere. The ``final`` one says it is leaving:
#: the broker answers it with DEVICE_DRAIN_REPLY once everything the device sent before it
#: is persisted, and hands back whatever it had still placed there.
DEVICE_DRAIN = "device_drain"
DEVICE_DRAIN_REPLY = "device_drain_reply"
#: Broker -> device after storing its output: {epoch, stored, resend}. Every record of the
#: device's outbox up to ``stored`` is stored; ``resend`` asks for the ones after it again
#: (device/outbox.py, broker/receipts.py).
OUTPUT_ACK = "output_ack"
#: Device -> broker: several output records that were ready together, in one message
#: (protocol/records.py); each is still signed, checked and acknowledged as one alone.
RECORDS = "records"
#: Broker -> gateways, every second: the last seq of each session that had output lately
#: (the Clone pattern's heartbeat), so a subscriber that lost the tail of a burst notices.
SEQ_BEACON = "seq_beacon"
#: Messages the output feed (PUB/SUB) holds per subscriber before dropping; what is dropped
#: is still in the store, and the seq beacon makes subscribers fetch it.
FEED_HWM = 100_000
#: Largest seq (and ``since``) there is: the stores hold signed 64-bit integers.
MAX_SEQ = 2**63 - 1

#: What a worker may say over its private link; anything else is rejected by the overseer.
WORKER_OUTPUT_TYPES = frozenset({
    STATUS, EXECUTE_INPUT, STREAM, DISPLAY_DATA, UPDATE_DISPLAY_DATA, EXECUTE_RESULT, ERROR,
    CLEAR_OUTPUT,
    INTERACT_START, INTERACT_END, EXECUTE_REPLY, INTERRUPT_REPLY, KERNEL_INFO_REPLY,
    INTERACT_REPLY, SHUTDOWN_REPLY, INPUT_REQUEST, COMM_OPEN, COMM_MSG, COMM_CLOSE,
    COMM_INFO_REPLY, COMPLETE_REPLY, INSPECT_REPLY, IS_COMPLETE_REPLY, HISTORY_REPLY,
})

#: Worker -> device only, never relayed: ``{"text"}``, something the worker says about itself
#: (a crash, a record it could not pack). The device logs it, labelled with the worker's pid
#: and session and at a bounded rate; a worker holds no descriptor of the device's log.
WORKER_LOG = "worker_log"

#: Requests a worker may be given.
WORKER_REQUEST_TYPES = frozenset({
    EXECUTE_REQUEST, INTERACT_REQUEST, KERNEL_INFO_REQUEST, SHUTDOWN_REQUEST,
}) | KERNEL_REQUEST_TYPES

#: Messages that end a request: after one of these the request is finished.
REPLY_TYPES = frozenset({EXECUTE_REPLY, INTERRUPT_REPLY, KERNEL_INFO_REPLY, SHUTDOWN_REPLY,
                         INTERACT_REPLY})

# Gateway <-> broker (the broker's side is broker/intake.py). Each gateway request gets one
# reply whose content has "ok"; a refusal is {"ok": false, "http_status": N, "error": "..."}.
REQUEST_ACCEPTED = "request_accepted"          # to execute/interact/interrupt requests
CELL_UPDATE_REQUEST = "cell_update_request"    # {since} -> {ok, document}
CELL_UPDATE_REPLY = "cell_update_reply"
SESSION_REPLAY_REQUEST = "session_replay_request"  # {since, limit} -> {ok, session, messages, more}
SESSION_REPLAY_REPLY = "session_replay_reply"
FILE_REQUEST = "file_request"                  # {seq, name} -> {ok, name, mime, size} + buffer
FILE_REPLY = "file_reply"
FILE_MIME = "application/x-cellbus-file+json"
RESTART_REQUEST = "restart_request"            # {} -> request_accepted {ok, closed: SESSION?}
#: Gateway -> broker every few seconds: {gateway: host:port, version}; no reply
#: (broker/gateways.py).
GATEWAY_HEARTBEAT = "gateway_heartbeat"
#: Broker -> each gateway it heard lately, when a message on its gateway port could not be
#: decrypted (changed on the way): {}. The broker cannot tell whose; each gateway asks
#: (GATEWAY_PROBE, {} -> GATEWAY_PROBE_REPLY {}) on the connection the note came on, and
#: makes that connection anew if the broker does not answer (broker/gatewaylinks.py).
GATEWAY_CHECK = "gateway_check"
GATEWAY_PROBE = "gateway_probe"
GATEWAY_PROBE_REPLY = "gateway_probe_reply"
BROKER_STATUS_REQUEST = "broker_status_request"  # no cell address -> {ok, devices, needs_work}
BROKER_STATUS_REPLY = "broker_status_reply"
#: Whose token is this? No cell address; the token travels only as its SHA-256
#: (protocol/tokens.py). {token_hash} -> {ok, user: NAME or None}
AUTH_REQUEST = "auth_request"
AUTH_REPLY = "auth_reply"
#: Store code to share by link; no cell address, the maker in metadata.cellbus.user.
#: {code, interact: {name: value} or None} -> {ok, id}
PERMALINK_REQUEST = "permalink_request"
PERMALINK_REPLY = "permalink_reply"
#: {id} -> {ok, id, code, interact}
PERMALINK_GET_REQUEST = "permalink_get_request"
PERMALINK_GET_REPLY = "permalink_get_reply"
#: Delete a permalink its maker (metadata.cellbus.user, by token) made: {id} -> {ok, id}
PERMALINK_DELETE_REQUEST = "permalink_delete_request"
PERMALINK_DELETE_REPLY = "permalink_delete_reply"
#: A worksheet's cells in order, as its page saved them (broker/layouts.py): a note, never
#: work. {cells: [{id, type: "code" | "markdown", code}]} -> {ok, cells: how many}
WORKSHEET_LAYOUT_REQUEST = "worksheet_layout_request"
WORKSHEET_LAYOUT_REPLY = "worksheet_layout_reply"
#: {} -> {ok, cells: [...] or None (never saved)}
WORKSHEET_LAYOUT_GET_REQUEST = "worksheet_layout_get_request"
WORKSHEET_LAYOUT_GET_REPLY = "worksheet_layout_get_reply"
#: Delete a worksheet's stored runs (broker/deletion.py): {} -> {ok, deleted: {requests,
#: messages, layout, deliveries}, closed: SESSION?}; 409 while a cell of it runs or waits
WORKSHEET_DELETE_REQUEST = "worksheet_delete_request"
WORKSHEET_DELETE_REPLY = "worksheet_delete_reply"
#: The worksheet as a Jupyter notebook (broker/notebook.py): {} -> {ok, notebook: nbformat 4}
WORKSHEET_NOTEBOOK_REQUEST = "worksheet_notebook_request"
WORKSHEET_NOTEBOOK_REPLY = "worksheet_notebook_reply"
# A refusal may also carry "retry_after": seconds, which the gateway sends as Retry-After.
#: The Jupyter API's view of a user's worksheets (gateway/jupyter/, broker/kernels.py).
#: Names a cell of the user (worksheet "-" for all): {worksheet?: NAME} -> {ok, kernels:
#: [{worksheet, session, created, last_activity, running: [cell_id], idle: bool}]}
KERNEL_LIST_REQUEST = "kernel_list_request"
KERNEL_LIST_REPLY = "kernel_list_reply"
#: A channels client's delivery position in a worksheet, kept in the store: {client,
#: session?, seq?}: with seq, store (session, seq) as the last delivered to ``client``;
#: without, read it -> {ok, session (the open one), position: [session, seq] | None,
#: start: the seq before the running execution's first output (or the last seq)}.
DELIVERY_REQUEST = "delivery_request"
DELIVERY_REPLY = "delivery_reply"
