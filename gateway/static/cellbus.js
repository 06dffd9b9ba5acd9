/* cellbus.js: the browser client of a cellbus gateway. Plain JavaScript, no build step.
 *
 *   <script src="/static/cellbus.js"></script>
 *   <div id="cell"></div>
 *   <script>cellbus.makeCell(document.getElementById("cell"), {code: "print(1 + 1)"});</script>
 *
 * Sections, in order:
 *   helpers
 *   Fold       one request's Jupyter messages -> output blocks (mirrors protocol/fold.py)
 *   renderers  block type -> function(block, render) -> DOM node; OutputView keeps them on screen
 *   Channel    one WebSocket per page and gateway, shared by all cells: subscribes to each
 *              worksheet with the last seq seen, reconnects with backoff, and falls back to
 *              HTTP (POST evaluate, long-poll update) when no WebSocket gets through
 *   Cell       textarea, Evaluate button (and Shift+Enter), working indicator, the
 *              no-output notice, status, and the output area (class "cellbus-output")
 *   makeCell, makeWorksheet   the public API on window.cellbus
 */
(function () {
  "use strict";

  // ---- helpers ----------------------------------------------------------------------------

  const script = document.currentScript;
  const SCRIPT_URL = script && script.src ? script.src : location.href;
  /** Where the gateway is: the directory above the one this script was loaded from. */
  const DEFAULT_SERVER = resolve("../");
  const FILE_MIME = "application/x-cellbus-file+json";
  const IMAGE_MIMES = ["image/png", "image/jpeg", "image/gif", "image/svg+xml"];
  const TEXT_MIMES = ["text/markdown", "text/latex", "text/plain"];
  const STREAM_NAMES = ["stdout", "stderr"];
  const PROTOCOL_VERSION = "5.4";
  const DEFAULTS = {
    code: "",
    user: "guest",
    worksheet: null,          // null: a worksheet of its own (a single cell)
    cellId: "1",
    autoeval: false,
    evalButtonText: "Evaluate",
    noOutputTimeout: 15000,   // ms without output after which the cell says so
    server: null,             // the gateway's base URL; default: where this script came from
    placeholder: "Python code; Shift+Enter evaluates",
    onShiftEnter: null,       // function(cell) after Shift+Enter evaluated it
    onInput: null,            // function(cell) when the code is edited
  };

  function resolve(relative) {
    try {
      return new URL(relative, SCRIPT_URL).href;
    } catch (e) {  // loaded inline into a page without a URL (about:blank)
      return null;
    }
  }

  function isObject(x) {
    return x !== null && typeof x === "object" && !Array.isArray(x);
  }

  /** A message's ``metadata.cellbus`` (seq, session, user, worksheet, cell_id, url), or null. */
  function cellbusFacts(msg) {
    return isObject(msg.metadata) && isObject(msg.metadata.cellbus) ? msg.metadata.cellbus : null;
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    let s = "";
    for (let i = 0; i < 32; i++) s += Math.floor(Math.random() * 16).toString(16);
    return s;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function stripAnsi(text) {
    return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
  }

  function sizeText(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
    return (bytes / 1024 / 1024).toFixed(1) + " MiB";
  }

  function injectStylesheet() {
    const href = resolve("cellbus.css");
    if (!href) return;
    for (const link of document.querySelectorAll("link[rel=stylesheet]")) {
      if (link.href.split("?")[0] === href.split("?")[0]) return;
    }
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    link.onload = refitAll;
    (document.head || document.documentElement).appendChild(link);
  }

  // ---- Fold: mirrors protocol/fold.py's CellOutput ------------------------------------------

  class Fold {
    constructor() {
      this.seq = 0;          // the last seq applied
      this.blocks = {};      // id -> block, in creation order
      this.inner = {};       // interact block id -> its nested Fold
      this.order = 0;
      this.open = null;      // id of the open text or interact block
      this.pendingClear = false;
    }

    /** The blocks, interact blocks with their nested output; the same shape /update gives. */
    view() {
      const out = {};
      for (const [id, block] of Object.entries(this.blocks)) {
        out[id] = this.inner[id] ? Object.assign({}, block, {output: this.inner[id].view()}) : block;
      }
      return out;
    }

    /** Fold one message in; true if anything visible changed. Never throws on bad input. */
    apply(seq, msg) {
      if (!Number.isInteger(seq) || seq <= this.seq || !isObject(msg)) return false;
      let type = msg.msg_type;
      if (typeof type !== "string") type = isObject(msg.header) ? msg.header.msg_type : null;
      if (typeof type !== "string" || !isObject(msg.content)) {
        this.seq = seq;
        return false;
      }
      return this._apply(seq, type, msg.content, msg);
    }

    _apply(seq, type, content, msg) {
      this.seq = Math.max(this.seq, seq);
      return this._dispatch(seq, type, content, msg);
    }

    _dispatch(seq, type, content, msg) {
      if (type === "execute_reply" || (type === "status" && content.execution_state === "idle")) {
        return this._close(seq);
      }
      const inner = this._openInteract();
      if (inner) {
        if (type === "interact_end" && !inner._openInteract()) return this._close(seq);
        const changed = inner._apply(seq, type, content, msg);
        if (changed) this.blocks[this.open].seq = seq;
        return changed;
      }
      switch (type) {
        case "stream": return this._stream(seq, content);
        case "display_data":
        case "execute_result": {
          const made = this._rich(seq, content, type === "execute_result" ? "result" : "display", msg);
          return made !== null && this._add(seq, made[0], made[1]);
        }
        case "error": return this._error(seq, content);
        case "clear_output":
          if (typeof content.wait !== "boolean" && content.wait !== undefined) return false;
          if (content.wait) {
            this.pendingClear = true;
            return false;
          }
          return this._clear(seq);
        case "interact_start": return this._interactStart(seq, content);
        default: return false;
      }
    }

    _stream(seq, content) {
      const name = content.name, text = content.text;
      if (!STREAM_NAMES.includes(name) || typeof text !== "string" || !text) return false;
      this._clearIfPending(seq);
      const block = this.open !== null ? this.blocks[this.open] : null;
      if (block && block.type === "text" && block.stream === name) {
        block.content += text;
        block.seq = seq;
        return true;
      }
      return this._add(seq, name, {type: "text", stream: name, content: text}, "open");
    }

    _rich(seq, content, kind, msg) {
      const data = content.data;
      if (!isObject(data)) return null;
      const ref = data[FILE_MIME];
      if (isObject(ref) && typeof ref.name === "string" && Number.isInteger(ref.size)
          && typeof ref.mime === "string") {
        const block = {type: "file", name: ref.name, size: ref.size, mime: ref.mime};
        const facts = cellbusFacts(msg) || {};
        if (ref.too_large === true) block.too_large = true;
        else if (typeof facts.url === "string") block.url = facts.url;
        return ["file", block];
      }
      for (const mime of IMAGE_MIMES) {
        if (typeof data[mime] === "string") {
          return ["image", {type: "image", mime: mime, data: data[mime]}];
        }
      }
      if (typeof data["text/html"] === "string") {
        return ["html", {type: "html", content: data["text/html"]}];
      }
      for (const mime of TEXT_MIMES) {
        if (typeof data[mime] === "string") {
          const block = {type: "text", stream: kind, content: data[mime]};
          if (mime !== "text/plain") block.mime = mime;
          return ["text", block];
        }
      }
      return null;
    }

    _error(seq, content) {
      const tb = content.traceback === undefined ? [] : content.traceback;
      if (typeof content.ename !== "string" || typeof content.evalue !== "string"
          || !Array.isArray(tb) || !tb.every((line) => typeof line === "string")) return false;
      return this._add(seq, "error", {type: "error", ename: content.ename, evalue: content.evalue,
                                      traceback: tb.slice()});
    }

    _interactStart(seq, content) {
      const controls = content.controls === undefined ? {} : content.controls;
      if (typeof content.interact_id !== "string" || !isObject(controls)) return false;
      const layout = content.layout === undefined ? Object.keys(controls) : content.layout;
      if (!Array.isArray(layout)) return false;
      this._add(seq, "interact", {type: "interact", interact_id: content.interact_id,
                                  controls: Object.assign({}, controls), layout: layout.slice(),
                                  auto_update: content.auto_update !== false},
                "open");
      this.inner["interact_" + (this.order - 1)] = new Fold();
      return true;
    }

    _openInteract() {
      return this.open !== null && this.inner[this.open] ? this.inner[this.open] : null;
    }

    _add(seq, prefix, block, state) {
      this._clearIfPending(seq);
      this._close(seq);
      const id = prefix + "_" + this.order;
      this.blocks[id] = Object.assign({}, block,
                                      {order: this.order, state: state || "closed", seq: seq});
      this.order += 1;
      if (state === "open") this.open = id;
      return true;
    }

    _close(seq) {
      if (this.open === null) return false;
      const inner = this._openInteract();
      if (inner) inner._close(seq);
      const block = this.blocks[this.open];
      block.state = "closed";
      block.seq = seq;
      this.open = null;
      return true;
    }

    _clearIfPending(seq) {
      if (this.pendingClear) this._clear(seq);
    }

    _clear() {
      this.pendingClear = false;
      if (Object.keys(this.blocks).length === 0) return false;
      this.blocks = {};
      this.inner = {};
      this.open = null;
      return true;
    }
  }

  // ---- renderers: one function per block type ----------------------------------------------

  function imageSource(block) {
    if (block.url) return block.url;
    if (block.mime === "image/svg+xml") {
      return "data:image/svg+xml;charset=utf-8," + encodeURIComponent(block.data);
    }
    return "data:" + block.mime + ";base64," + block.data;
  }

  /** Block type -> function(block, render) returning a DOM node; `render(blocks)` renders
   * nested output. A later type (interact controls) is added by assigning a new entry. */
  const renderers = {
    text(block) {
      const pre = el("pre", "cellbus-text cellbus-" + (block.stream || "stdout"), block.content);
      if (block.mime) pre.dataset.mime = block.mime;
      return pre;
    },
    image(block) {
      const img = el("img", "cellbus-image");
      img.alt = "image output (" + block.mime + ")";
      img.src = imageSource(block);
      return img;
    },
    file(block) {
      const box = el("div", "cellbus-file");
      if (block.too_large || !block.url) {
        box.appendChild(el("span", "cellbus-file-name", block.name));
        box.appendChild(el("span", "cellbus-file-size",
                           " (" + sizeText(block.size) + ", too large to show)"));
        return box;
      }
      const link = el("a", "cellbus-file-link", block.name);
      link.href = block.url;
      link.target = "_blank";
      link.rel = "noopener";
      box.appendChild(link);
      box.appendChild(el("span", "cellbus-file-size", " (" + sizeText(block.size) + ")"));
      if (block.mime.startsWith("image/")) {
        const img = el("img", "cellbus-image");
        img.alt = block.name;
        img.src = block.url;
        box.appendChild(img);
      }
      return box;
    },
    html(block) {
      const div = el("div", "cellbus-html");
      div.innerHTML = block.content;  // the user's own output, shown as HTML on purpose
      return div;
    },
    error(block) {
      const pre = el("pre", "cellbus-error");
      const tb = block.traceback;
      const text = tb.length ? tb.join("") : block.ename + ": " + block.evalue;
      pre.textContent = stripAnsi(text).replace(/\n$/, "");
      return pre;
    },
    interact(block, render) {
      const box = el("div", "cellbus-interact");
      box.dataset.interactId = block.interact_id;
      box.appendChild(el("div", "cellbus-interact-controls",
                         "interact: " + (block.layout || []).join(", ")));
      box.appendChild(render(block.output || {}));
      return box;
    },
  };

  function renderUnknown(block) {
    return el("pre", "cellbus-text cellbus-unknown", "[" + block.type + " output]");
  }

  function sortedBlocks(blocks) {
    return Object.entries(blocks).sort((a, b) => a[1].order - b[1].order);
  }

  /** A node for each block of `blocks`, in order (used for nested output). */
  function renderAll(blocks) {
    const box = el("div", "cellbus-blocks");
    for (const [id, block] of sortedBlocks(blocks)) box.appendChild(renderBlock(id, block));
    return box;
  }

  function renderBlock(id, block) {
    const render = renderers[block.type] || renderUnknown;
    const node = render(block, renderAll);
    node.classList.add("cellbus-block");
    node.dataset.block = id;
    return node;
  }

  /** Keeps an output element showing a set of blocks; redraws only what changed. */
  class OutputView {
    constructor(element) {
      this.element = element;
      this.shown = new Map();  // id -> {block: {type, seq, content}, node}
    }

    update(blocks) {
      for (const [id, entry] of this.shown) {
        if (!(id in blocks)) {
          entry.node.remove();
          this.shown.delete(id);
        }
      }
      let previous = null;
      for (const [id, block] of sortedBlocks(blocks)) {
        let entry = this.shown.get(id);
        if (!entry || entry.seq !== block.seq || entry.block !== block) {
          entry = this._draw(id, block, entry);
          this.shown.set(id, entry);
        }
        const want = previous ? previous.nextSibling : this.element.firstChild;
        if (want !== entry.node) this.element.insertBefore(entry.node, want);
        previous = entry.node;
      }
    }

    _draw(id, block, entry) {
      // A growing stream only appends its new text, so long output does not redraw.
      if (entry && block.type === "text" && entry.type === "text" && entry.stream === block.stream
          && typeof entry.content === "string" && block.content.startsWith(entry.content)) {
        entry.node.appendChild(document.createTextNode(block.content.slice(entry.content.length)));
        return Object.assign(entry, {seq: block.seq, block: block, content: block.content});
      }
      const node = renderBlock(id, block);
      if (entry) entry.node.replaceWith(node);
      return {node: node, seq: block.seq, block: block, type: block.type, stream: block.stream,
              content: block.content};
    }

    clear() {
      this.update({});
      this.element.textContent = "";
    }

    get empty() {
      return this.shown.size === 0;
    }
  }

  // ---- Channel: one WebSocket per gateway, shared by every cell of the page ---------------

  const RECONNECT_MIN = 250;     // ms, doubled per failed attempt
  const RECONNECT_MAX = 3000;
  const CONNECT_TIMEOUT = 5000;  // ms for a socket to open
  const FAILURES_BEFORE_POLLING = 2;
  const RESYNC_DELAY = 5000;     // ms after a reconnect before a running cell checks /update

  class Channel {
    constructor(server) {
      this.server = server;
      this.wsUrl = server.replace(/^http/, "ws") + "ws";
      this.mode = window.WebSocket ? "websocket" : "poll";
      this.ws = null;
      this.up = false;          // the current socket has subscribed
      this.everUp = false;      // some socket has subscribed, so WebSocket works here
      this.failures = 0;        // sockets in a row that closed before any answer
      this.subs = new Map();    // "user/worksheet" -> {user, worksheet, session, last, cells}
      this.requests = new Map();  // msg_id -> {cell, header, msg, sent, accepted, kind}
      this.clientSession = newId();
      this.timer = null;
      window.addEventListener("online", () => this._reconnectSoon(0));
    }

    register(cell) {
      const key = cell.user + "/" + cell.worksheet;
      let sub = this.subs.get(key);
      if (!sub) {
        sub = {user: cell.user, worksheet: cell.worksheet, session: null, last: 0, cells: new Set()};
        this.subs.set(key, sub);
        if (this.ws && this.ws.readyState === WebSocket.OPEN) this._subscribe(sub);
      }
      sub.cells.add(cell);
      if (this.mode === "websocket" && !this.ws && this.timer === null) this._connect();
    }

    get connected() {
      return this.mode === "poll" || this.up;
    }

    /** Send an execute (or interrupt) request for `cell`; returns the request's msg_id, or
     * null when the page uses HTTP instead (the cell then does it itself). */
    request(cell, msgType, content) {
      if (this.mode === "poll") return null;
      const header = {msg_id: newId(), msg_type: msgType, session: this.clientSession,
                      username: cell.user, date: new Date().toISOString(),
                      version: PROTOCOL_VERSION};
      const address = {user: cell.user, worksheet: cell.worksheet, cell_id: cell.cellId};
      const msg = {header: header, parent_header: {}, content: content,
                   metadata: {cellbus: address}};
      const record = {cell: cell, msg: msg, kind: msgType, sent: false, accepted: false};
      this.requests.set(header.msg_id, record);
      this._send(record);
      return header.msg_id;
    }

    forget(msgId) {
      this.requests.delete(msgId);
    }

    _send(record) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify(record.msg));
        record.sent = true;
      }
    }

    _subscribe(sub) {
      const header = {msg_id: newId(), msg_type: "subscribe_request", session: this.clientSession,
                      username: sub.user, date: new Date().toISOString(), version: PROTOCOL_VERSION};
      const content = {user: sub.user, worksheet: sub.worksheet, since: sub.last};
      if (sub.session) content.session = sub.session;
      sub.pending = header.msg_id;
      this.ws.send(JSON.stringify({header: header, parent_header: {}, metadata: {}, content: content}));
    }

    _connect() {
      this.timer = null;
      let ws;
      try {
        ws = new WebSocket(this.wsUrl);
      } catch (e) {
        this._closed(null, false);
        return;
      }
      this.ws = ws;
      this.up = false;
      let answered = false;
      const guard = setTimeout(() => ws.close(), CONNECT_TIMEOUT);
      ws.onopen = () => {
        clearTimeout(guard);
        for (const sub of this.subs.values()) this._subscribe(sub);
        this._resend();
      };
      ws.onmessage = (event) => {
        answered = true;
        this._receive(event.data);
      };
      ws.onclose = () => {
        clearTimeout(guard);
        if (this.ws === ws) this._closed(ws, answered);
      };
    }

    _closed(ws, answered) {
      this.ws = null;
      const wasUp = this.up;
      this.up = false;
      this.failures = answered ? 0 : this.failures + 1;
      for (const record of this.requests.values()) {
        if (!record.accepted && record.sent) record.unsure = true;  // did it get through?
        record.sent = false;
      }
      if (!this.everUp && this.failures >= FAILURES_BEFORE_POLLING) {
        this._fallBack();
        return;
      }
      if (wasUp) this._tellCells(false);
      this._reconnectSoon(Math.min(RECONNECT_MAX, RECONNECT_MIN * 2 ** Math.max(0, this.failures - 1)));
    }

    _reconnectSoon(delay) {
      if (this.mode !== "websocket" || this.ws) return;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = setTimeout(() => this._connect(), delay * (0.75 + Math.random() / 2));
    }

    /** No WebSocket gets through: every cell uses HTTP from now on. */
    _fallBack() {
      this.mode = "poll";
      const waiting = Array.from(this.requests.entries());
      this.requests.clear();
      for (const [msgId, record] of waiting) {
        if (record.kind === "execute_request" && record.cell.requestId === msgId) {
          record.cell.requestId = null;
          record.cell._viaHttp(record.msg.content.code);
        }
      }
      this._tellCells(true);
    }

    /** After a reconnect: requests that were sent but not confirmed are looked up before
     * they are sent again, so that none runs twice. */
    async _resend() {
      for (const [msgId, record] of this.requests) {
        if (record.accepted || record.sent) continue;
        if (record.unsure && record.kind === "execute_request") {
          const doc = await record.cell._fetchDocument(0);
          if (this.requests.get(msgId) !== record) continue;
          if (doc && doc.request === msgId) {
            record.accepted = true;
            record.cell._accepted(msgId, doc.status);
            continue;
          }
        }
        if (record.unsure && record.kind !== "execute_request") {  // an interrupt: let it go
          this.requests.delete(msgId);
          continue;
        }
        record.unsure = false;
        this._send(record);
      }
    }

    _eachCell(f) {
      for (const sub of this.subs.values()) for (const cell of sub.cells) f(cell);
    }

    _tellCells(up) {
      this._eachCell((cell) => cell._connection(up));
    }

    _receive(raw) {
      let msg;
      try {
        msg = JSON.parse(raw);
      } catch (e) {
        return;
      }
      if (!isObject(msg) || !isObject(msg.content)) return;
      const type = msg.msg_type || (isObject(msg.header) ? msg.header.msg_type : null);
      const parent = isObject(msg.parent_header) ? msg.parent_header.msg_id : null;
      const facts = cellbusFacts(msg);
      if (facts && Number.isInteger(facts.seq)) {
        this._output(msg, facts, parent);
      } else if (type === "subscribe_reply") {
        this._subscribed(msg.content, parent);
      } else if (parent && this.requests.has(parent)) {
        this._replied(this.requests.get(parent), parent, type, msg.content);
      }
    }

    _subscribed(content, parent) {
      for (const sub of this.subs.values()) {
        if (sub.pending !== parent) continue;
        sub.pending = null;
        if (!content.ok) {  // the broker is away: ask again soon
          const ws = this.ws;
          setTimeout(() => {
            if (this.ws === ws && ws.readyState === WebSocket.OPEN) this._subscribe(sub);
          }, 2000);
          return;
        }
        if (content.session && content.session !== sub.session) {
          sub.session = content.session;
          sub.last = 0;
        }
        if (Number.isInteger(content.seq)) sub.last = Math.max(sub.last, content.seq);
      }
      if (!this.up) {
        if (this.everUp) setTimeout(() => this._eachCell((cell) => cell._resync()), RESYNC_DELAY);
        this.up = this.everUp = true;
        this.failures = 0;
        this._tellCells(true);
      }
    }

    _replied(record, msgId, type, content) {
      if (content.ok) {
        record.accepted = true;
        if (record.kind === "execute_request") record.cell._accepted(msgId, content.status);
        else this.requests.delete(msgId);
      } else if (content.http_status === 409) {  // sent twice; the first one got through
        record.accepted = true;
      } else {
        this.requests.delete(msgId);
        if (record.kind === "execute_request") record.cell._refused(msgId, content.error || "refused");
      }
    }

    _output(msg, facts, parent) {
      const sub = this.subs.get(facts.user + "/" + facts.worksheet);
      if (!sub) return;
      if (facts.session !== sub.session) {  // a new session for the worksheet starts at seq 1
        sub.session = facts.session;
        sub.last = 0;
      }
      if (facts.seq <= sub.last) return;  // seen already
      sub.last = facts.seq;
      const record = parent ? this.requests.get(parent) : null;
      if (record && record.cell.requestId === parent) record.cell._message(facts.seq, msg);
    }
  }

  const channels = new Map();

  function channelFor(server) {
    if (!channels.has(server)) channels.set(server, new Channel(server));
    return channels.get(server);
  }

  // ---- Cell -----------------------------------------------------------------------------

  const allCells = new Set();
  let refitQueued = false;

  /** Fit every input again, once the page's layout changed (styles loaded, window resized). */
  function refitAll() {
    if (refitQueued) return;
    refitQueued = true;
    requestAnimationFrame(() => {
      refitQueued = false;
      for (const cell of allCells) cell._fit();
    });
  }
  window.addEventListener("resize", refitAll);

  const STATUS_TEXT = {
    idle: "", sending: "sending…", queued: "queued", running: "running…", done: "done",
    error: "error", aborted: "aborted", failed: "failed", superseded: "evaluated elsewhere",
  };

  class Cell {
    constructor(element, options) {
      const o = Object.assign({}, DEFAULTS, options || {});
      if (!options || options.code === undefined) o.code = element.textContent.trim();
      this.options = o;
      this.user = String(o.user);
      this.worksheet = o.worksheet ? String(o.worksheet) : "cell-" + newId().slice(0, 16);
      this.cellId = String(o.cellId);
      this.server = o.server ? new URL(o.server, location.href).href.replace(/\/?$/, "/")
        : DEFAULT_SERVER;
      if (!this.server) throw new Error("cellbus.makeCell: say where the gateway is (options.server)");
      this.channel = channelFor(this.server);
      this.requestId = null;   // the request whose output this cell shows
      this.generation = 0;     // bumped by every evaluation; late callbacks of older ones stop
      this.status = "idle";
      this.busy = false;
      this.sawOutput = false;
      this.noOutputTimer = null;
      this._build(element, o);
      allCells.add(this);
      this.channel.register(this);
      if (o.autoeval) this.evaluate();
    }

    _build(element, o) {
      this.element = element;
      element.classList.add("cellbus-cell");
      element.textContent = "";
      this.input = el("textarea", "cellbus-input");
      this.input.value = o.code;
      this.input.wrap = "off";
      this.input.placeholder = o.placeholder;
      this.input.spellcheck = false;
      this.input.setAttribute("autocapitalize", "off");
      this.input.setAttribute("aria-label", "code of cell " + this.cellId);
      this.input.addEventListener("input", () => {
        this._fit();
        if (o.onInput) o.onInput(this);
      });
      this.input.addEventListener("keydown", (event) => this._key(event));
      const bar = el("div", "cellbus-bar");
      this.button = el("button", "cellbus-evaluate", o.evalButtonText);
      this.button.type = "button";
      this.button.addEventListener("click", () => this.evaluate());
      this.stopButton = el("button", "cellbus-interrupt", "Stop");
      this.stopButton.type = "button";
      this.stopButton.hidden = true;
      this.stopButton.addEventListener("click", () => this.interrupt());
      this.working = el("span", "cellbus-working");
      this.working.hidden = true;
      this.working.setAttribute("aria-hidden", "true");
      this.statusText = el("span", "cellbus-status");
      this.statusText.setAttribute("role", "status");
      bar.append(this.button, this.stopButton, this.working, this.statusText);
      this.notice = el("div", "cellbus-notice");
      this.notice.setAttribute("role", "alert");
      this.notice.hidden = true;
      this.outputElement = el("div", "cellbus-output");
      this.outputElement.setAttribute("aria-live", "polite");
      this.view = new OutputView(this.outputElement);
      element.append(this.input, bar, this.notice, this.outputElement);
      this._fit();
      this._setStatus("idle");
    }

    /** As tall as the code (2 to 30 lines), so a cell needs no scrolling of its own. */
    _fit() {
      const input = this.input;
      input.rows = Math.min(Math.max(input.value.split("\n").length, 2), 30);
      input.style.height = "";
      if (!input.scrollHeight) return;  // not laid out (hidden): rows must do
      const frame = input.offsetHeight - input.clientHeight;  // borders and a scrollbar
      const lineHeight = parseFloat(getComputedStyle(input).lineHeight) || 20;
      input.style.height = Math.min(input.scrollHeight + frame, 30 * lineHeight + 24) + "px";
    }

    _key(event) {
      if (event.key !== "Enter" || event.isComposing) return;
      if (event.shiftKey || event.ctrlKey || event.metaKey) {
        event.preventDefault();
        this.evaluate();
        if (event.shiftKey && this.options.onShiftEnter) this.options.onShiftEnter(this);
      }
    }

    focus() {
      this.input.focus();
    }

    /** Evaluate the code in the input; the old output stays, marked stale, until new comes. */
    evaluate() {
      const code = this.input.value;
      const gen = ++this.generation;
      if (this.requestId) this.channel.forget(this.requestId);
      this.requestId = null;
      this.fold = new Fold();
      this.sawOutput = false;
      this.started = performance.now();
      this.outputElement.classList.toggle("cellbus-stale", !this.view.empty);
      this._hideNotice();
      this._setBusy(true);
      this._setStatus("sending");
      clearTimeout(this.noOutputTimer);
      if (this.options.noOutputTimeout > 0) {
        this.noOutputTimer = setTimeout(() => this._noOutput(gen), this.options.noOutputTimeout);
      }
      const msgId = this.channel.request(this, "execute_request", {code: code});
      if (msgId !== null) this.requestId = msgId;
      else this._viaHttp(code);
    }

    interrupt() {
      if (!this.busy) return;
      if (this.channel.request(this, "interrupt_request", {}) === null) {
        fetch(this._url("interrupt"), {method: "POST"}).catch(() => {});
      }
    }

    // -- from the channel (WebSocket) ----------------------------------------------------------

    _accepted(msgId, status) {
      if (msgId === this.requestId && this.status === "sending") {
        this._setStatus(status === "working" ? "running" : "queued");
      }
    }

    _refused(msgId, error) {
      if (msgId !== this.requestId) return;
      this._finish("failed", "The server refused this evaluation: " + error);
    }

    _message(seq, msg) {
      const type = msg.msg_type;
      if (!this.busy) return;
      if (type === "execute_input" || (type === "status" && msg.content.execution_state === "busy")) {
        if (this.status === "sending" || this.status === "queued") this._setStatus("running");
      }
      if (this.fold.apply(seq, msg)) this._show(this.fold.view());
      if (type === "execute_reply") {
        this.replyStatus = msg.content.status;
      } else if (type === "status" && msg.content.execution_state === "idle") {
        const reply = this.replyStatus;
        this._finish(reply === "ok" || !reply ? "done" : reply === "aborted" ? "aborted" : "error");
      }
    }

    _connection(up) {
      if (!this.busy) return;
      if (up) {
        this.statusText.textContent = STATUS_TEXT[this.status];
        this.element.classList.remove("cellbus-offline");
      } else {
        this.statusText.textContent = "connection lost, reconnecting…";
        this.element.classList.add("cellbus-offline");
      }
    }

    /** A safety net after a reconnect: if the request has finished but its end never came
     * over the socket (its session was replaced meanwhile, say), show the stored output. */
    async _resync() {
      const msgId = this.requestId;
      if (!this.busy || !msgId) return;
      const doc = await this._fetchDocument(0);
      if (!doc || !this.busy || this.requestId !== msgId || doc.request !== msgId) return;
      if (doc.status !== "done" && doc.status !== "error") return;
      this._show(doc.output);
      this._finish(doc.status);
    }

    // -- HTTP: POST evaluate, then long-poll update ------------------------------------------

    _url(action) {
      const parts = [this.user, this.worksheet, this.cellId].map(encodeURIComponent);
      return this.server + "home/" + parts.join("/") + "/" + action;
    }

    async _fetchDocument(since, wait) {
      try {
        const r = await fetch(this._url("update?since=" + since + (wait ? "&wait=" + wait : "")),
                              {cache: "no-store"});
        return r.ok ? await r.json() : null;
      } catch (e) {
        return null;
      }
    }

    async _viaHttp(code) {
      const gen = this.generation;
      let r, body;
      try {
        r = await fetch(this._url("evaluate"), {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify({input: code}),
        });
        body = await r.json().catch(() => ({}));
      } catch (e) {
        if (gen === this.generation) {
          this._finish("failed",
                       "Could not reach the server; check the connection and evaluate again.");
        }
        return;
      }
      if (gen !== this.generation) return;
      if (r.status !== 202) {
        this._finish("failed",
                     "The server refused this evaluation: " + (body.error || "HTTP " + r.status));
        return;
      }
      this.requestId = body.msg_id;
      this._setStatus("queued");
      this._poll(body.msg_id);
    }

    async _poll(msgId) {
      let since = 0, delay = 500, blocks = {};
      while (this.requestId === msgId && this.busy) {
        const doc = await this._fetchDocument(since, 20);
        if (this.requestId !== msgId || !this.busy) return;
        if (!doc) {
          this._connection(false);
          await sleep(delay);
          delay = Math.min(delay * 2, 5000);
          continue;
        }
        delay = 500;
        this._connection(true);
        if (doc.request && doc.request !== msgId) {
          this._finish("superseded");
          return;
        }
        if (doc.reset) blocks = {};
        if (Object.keys(doc.output).length || doc.reset) {
          blocks = Object.assign({}, blocks, doc.output);
          this._show(blocks);
        }
        since = doc.seq;
        if (doc.status === "working" && this.status !== "running") this._setStatus("running");
        if (doc.status === "done" || doc.status === "error") {
          this._finish(doc.status);
          return;
        }
      }
    }

    // -- what the person sees ------------------------------------------------------------------

    _show(blocks) {
      if (!this.sawOutput && Object.keys(blocks).length) {
        this.sawOutput = true;
        this.outputElement.classList.remove("cellbus-stale");
        clearTimeout(this.noOutputTimer);
        this._hideNotice();
      }
      if (this.sawOutput) this.view.update(blocks);
    }

    _noOutput(gen) {
      if (gen !== this.generation || this.sawOutput || !this.busy) return;
      const seconds = Math.round(this.options.noOutputTimeout / 100) / 10;
      const what = this.status === "running"
        ? "The code is still running."
        : this.channel.connected ? "The server has not started it yet; it may be busy."
          : "The connection to the server is down; still trying.";
      this.notice.textContent = "No output after " + seconds + " s. " + what;
      this.notice.hidden = false;
      this.element.classList.add("cellbus-waiting");
    }

    _hideNotice() {
      this.notice.hidden = true;
      this.notice.textContent = "";
      this.element.classList.remove("cellbus-waiting");
    }

    _setBusy(busy) {
      this.busy = busy;
      this.working.hidden = !busy;
      this.stopButton.hidden = !busy;
      this.element.classList.toggle("cellbus-busy", busy);
    }

    _setStatus(status) {
      this.status = status;
      this.element.dataset.status = status;
      let text = status in STATUS_TEXT ? STATUS_TEXT[status] : status;
      if (!this.busy && this.started !== undefined && status !== "idle") {
        const ms = performance.now() - this.started;
        text += " (" + (ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s") + ")";
      }
      this.statusText.textContent = text;
    }

    _finish(status, message) {
      if (this.requestId) this.channel.forget(this.requestId);
      clearTimeout(this.noOutputTimer);
      this._hideNotice();
      if (!this.sawOutput) {  // nothing new came: the stale output goes
        this.view.clear();
        this.outputElement.classList.remove("cellbus-stale");
      }
      this.replyStatus = null;
      this._setBusy(false);
      this.element.classList.remove("cellbus-offline");
      this._setStatus(status);
      if (message) {
        this.notice.textContent = message;
        this.notice.hidden = false;
      }
    }
  }

  // ---- public API ---------------------------------------------------------------------------

  /** Turn `element` into a cell; see DEFAULTS above for the options. Returns the cell. */
  function makeCell(element, options) {
    if (typeof element === "string") element = document.querySelector(element);
    if (!element) throw new Error("cellbus.makeCell: no such element");
    return new Cell(element, options);
  }

  /** Cells that share one worksheet (one session), one after the other in `element`;
   * Shift+Enter evaluates and moves to the next cell, adding one after the last. */
  function makeWorksheet(element, options) {
    const o = Object.assign({cells: 3, codes: []}, options || {});
    if (!o.worksheet) throw new Error("cellbus.makeWorksheet: a worksheet name is needed");
    const cells = [];
    const list = el("div", "cellbus-worksheet");
    element.appendChild(list);
    function add(code) {
      const box = el("div");
      list.appendChild(box);
      const cell = makeCell(box, Object.assign({}, o, {
        code: code || "", cellId: String(cells.length + 1), autoeval: false,
        onShiftEnter: (c) => {
          const next = cells.indexOf(c) + 1;
          (cells[next] || add("")).focus();
        },
      }));
      cells.push(cell);
      if (o.onAdd) o.onAdd(cell);
      return cell;
    }
    for (let i = 0; i < Math.max(o.cells, o.codes.length); i++) add(o.codes[i]);
    return {cells: cells, add: add};
  }

  injectStylesheet();
  window.cellbus = {makeCell: makeCell, makeWorksheet: makeWorksheet, renderers: renderers,
                    Fold: Fold, version: "0.1.0"};
})();
