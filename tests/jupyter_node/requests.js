// @jupyterlab/services in Node (the `ws` package as its WebSocket) against a Jupyter server:
// start a kernel, wait until it is connected, then make each request KernelConnection has
// for the shell channel and wait for its future to be done (its reply and its idle status).
// Usage: node requests.js BASE_URL KERNEL_NAME   (prints one JSON line: {request: reply
// type, or "none" if the request was not done within 10 s})
'use strict';
const { ServerConnection, KernelManager } = require('@jupyterlab/services');
const WebSocket = require('ws');

const [baseUrl, name] = process.argv.slice(2);
const settings = ServerConnection.makeSettings({
  baseUrl, wsUrl: baseUrl.replace(/^http/, 'ws'), WebSocket,
});

function connected(kernel) {
  return new Promise((resolve) => {
    if (kernel.connectionStatus === 'connected') return resolve();
    kernel.connectionStatusChanged.connect((_, status) => status === 'connected' && resolve());
  });
}

function done(future) {
  return Promise.race([future.then((reply) => reply.header.msg_type),
    new Promise((resolve) => setTimeout(() => resolve('none'), 10000))]);
}

(async () => {
  const manager = new KernelManager({ serverSettings: settings });
  const kernel = await manager.startNew({ name });
  await connected(kernel);
  const got = {};
  got.kernel_info = await done(kernel.requestKernelInfo());
  got.execute = await done(kernel.requestExecute({ code: 'import os' }).done);
  got.complete = await done(kernel.requestComplete({ code: 'os.pa', cursor_pos: 5 }));
  got.inspect = await done(kernel.requestInspect({ code: 'os', cursor_pos: 2, detail_level: 0 }));
  got.is_complete = await done(kernel.requestIsComplete({ code: 'for i in x:' }));
  got.history = await done(kernel.requestHistory({
    hist_access_type: 'tail', n: 3, output: false, raw: true }));
  got.comm_info = await done(kernel.requestCommInfo({}));
  console.log(JSON.stringify(got));
  await kernel.shutdown();
  manager.dispose();
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
