// @jupyterlab/services in Node (the `ws` package as its WebSocket) against a Jupyter server:
// start a kernel, run a cell that prints 8 lines, cut the network mid-cell, connect a second
// client (new client id) while it is cut, restore it once that client has seen line 5 so the
// first one (same client id) reconnects by itself, and print every line each client got.
// Usage: node reconnect.js BASE_URL   (prints one JSON line: {"same": [...], "new": [...]})
'use strict';
const { ServerConnection, KernelAPI } = require('@jupyterlab/services');
const { KernelConnection } = require('@jupyterlab/services/lib/kernel/default');
const WebSocket = require('ws');

const baseUrl = process.argv[2];
const CODE = 'import time\nfor i in range(8):\n    print(f"line {i}", flush=True)\n' +
  '    time.sleep(0.5)\n';

// The first client's network: while it is cut, its socket is dropped and it cannot connect.
let online = true;
const FIRST = 'first-client';
const open = new Set();
class FlakyWebSocket extends WebSocket {
  constructor(url, protocols) {
    const blocked = !online && url.includes(`session_id=${FIRST}`);
    super(blocked ? url.replace(/^ws:\/\/[^/]+/, 'ws://127.0.0.1:9') : url, protocols);
    if (url.includes(`session_id=${FIRST}`)) {
      open.add(this);
      this.on('close', () => open.delete(this));
    }
  }
}
function cut() {
  online = false;
  for (const ws of open) ws.terminate();
}

const settings = ServerConnection.makeSettings({
  baseUrl, wsUrl: baseUrl.replace(/^http/, 'ws'), WebSocket: FlakyWebSocket,
});

function linesOf(kernel, into, onLine) {
  kernel.iopubMessage.connect((_, msg) => {
    if (msg.header.msg_type !== 'stream') return;
    for (const line of msg.content.text.split('\n')) {
      if (line.startsWith('line ')) { into.push(line); onLine(line); }
    }
  });
}

function idleAfter(kernel, msgId) {
  return new Promise((resolve) => kernel.iopubMessage.connect((_, msg) => {
    if (msg.header.msg_type === 'status' && msg.content.execution_state === 'idle' &&
        msg.parent_header.msg_id === msgId) resolve();
  }));
}

function connected(kernel) {
  return new Promise((resolve) => {
    if (kernel.connectionStatus === 'connected') return resolve();
    kernel.connectionStatusChanged.connect((_, status) => status === 'connected' && resolve());
  });
}

async function main() {
  const model = await KernelAPI.startNew({ name: 'python' }, settings);
  const first = new KernelConnection({ model, serverSettings: settings, clientId: FIRST });
  const got = { same: [], new: [] };
  let second = null;
  let secondIdle = null;
  let future = null;
  let restored = null;
  const cutDone = new Promise((resolve) => linesOf(first, got.same, (line) => {
    if (line === 'line 2' && online && second === null) {
      cut();
      second = new KernelConnection({ model, serverSettings: settings, clientId: 'new-client' });
      secondIdle = idleAfter(second, future.msg.header.msg_id);
      restored = new Promise((back) => linesOf(second, got.new, (seen) => {
        if (seen === 'line 5') { online = true; back(); }
      }));
      resolve();
    }
  }));
  await connected(first);
  future = first.requestExecute({ code: CODE });
  await cutDone;
  await restored;
  await future.done;
  await secondIdle;
  process.stdout.write(JSON.stringify(got) + '\n');
  first.dispose();
  second.dispose();
  await KernelAPI.shutdownKernel(model.id, settings);
}

main().catch((e) => { console.error(e); process.exit(1); });
