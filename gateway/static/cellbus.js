/* cellbus.js: the browser client of a cellbus gateway. Plain JavaScript, no build step.
 *
 *   <script src="/static/cellbus.js"></script>
 *   <div id="cell"></div>
 *   <script>cellbus.makeCell(document.getElementById("cell"), {code: "print(1 + 1)"});</script>
 *
 * One file with no build step on purpose: an embedder adds one <script> and reads what runs
 * (README: Using it). Sections, in order:
 *   helpers    (and ANSI colours, by ansi_up from static/vendor/, loaded when first needed;
 *              Markdown, by marked and DOMPurify from there too)
 *   Fold       one request's Jupyter messages -> output blocks (mirrors protocol/fold.py)
 *   frames     HTML output in sandboxed iframes (script runs, but not in the page's origin)
 *   TextView   a text block however long: first and last lines, "N lines hidden", all a
 *              click away
 *   renderers  block type -> function(block, render, cell) -> DOM node; OutputView keeps them
 *              on screen
 *   InteractView  an @interact's controls (built once) and its output under them; a change
 *              sends an interact_request, and each run's output replaces the last
 *   PollTransport  the HTTP API (POST evaluate, long-poll update) as a transport
 *   Channel    the WebSocket transport: one socket per page and gateway, shared by all
 *              cells; subscribes to each worksheet with the last seq seen, reconnects with
 *              backoff, and hands every cell to its PollTransport when no WebSocket gets
 *              through. Both have one interface (evaluate, interrupt, interact, restart,
 *              follow, document, register, unregister, forget): a Cell knows no transport
 *   keys       the code box's Tab, Shift+Tab and Enter
 *   editor     CodeMirror 5 on the code box when the page loaded it (static/vendor/
 *              codemirror/), in the kernel's language, with the same keys
 *   Cell       code box, Evaluate button (and Shift+Enter), execution number, working
 *              indicator, the no-output notice, status, and the output area (class
 *              "cellbus-output"), drawn once per animation frame; routes interact runs into
 *              its output; shows its stored output after a reload (restore); sends
 *              cellbus:status, cellbus:count, cellbus:session, cellbus:idle,
 *              cellbus:closed, cellbus:type and cellbus:rendered events; a Markdown cell
 *              (setType) is rendered in place and never sent
 *   SessionBar, makeCell, makeWorksheet   a worksheet's session (its state, gone: why, a
 *              warning before its idle timeout with Keep), and the public API on
 *              window.cellbus
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
    token: null,              // a user's token, for pages of other sites (--allow-origin) on a
                              // gateway with --auth token; its own pages use its cookie
    kernel: null,             // the kernel a new worksheet runs (GET /kernels); null: the
                              // built-in Python one. Later evaluates keep the first's.
    placeholder: "Python code; Shift+Enter evaluates",
    onShiftEnter: null,       // function(cell) after Shift+Enter evaluated it
    onInput: null,            // function(cell) when the code is edited
    restore: false,           // show what the store has of this cell when it is made (its
                              // output, a request still running); makeWorksheet's cells do
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

  function msgTypeOf(msg) {
    return typeof msg.msg_type === "string" ? msg.msg_type
      : isObject(msg.header) && typeof msg.header.msg_type === "string" ? msg.header.msg_type : null;
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

  // ANSI colours (a traceback of a Jupyter kernel, a coloured print) become coloured spans
  // by ansi_up, a classic script from npm (pinned in package.json) that the gateway serves
  // as static/vendor/ansi_up.js; loaded the first time some output has an escape, shown
  // without its colours until then (or if it cannot load).
  const ANSI_ESCAPE = /\x1b\[[0-9;?]*[A-Za-z]/;
  const vendorLoads = new Map();  // path -> Promise of the global it defines, or of null

  /** A Promise of `window[name]`, which the classic script static/`path` defines: the page's
   * own when it loaded one, else loaded once from the gateway; null if it cannot load. */
  function vendorScript(path, name) {
    if (!vendorLoads.has(path)) {
      vendorLoads.set(path, new Promise((done) => {
        if (window[name]) return done(window[name]);
        const src = resolve(path);
        if (!src) return done(null);
        const tag = document.createElement("script");
        tag.src = src;
        tag.onload = () => done(window[name] || null);
        tag.onerror = () => done(null);
        (document.head || document.documentElement).appendChild(tag);
      }));
    }
    return vendorLoads.get(path);
  }

  /** A Promise of a new ansi_up converter (it keeps colours across calls), or of null. */
  function ansiConverter() {
    return vendorScript("vendor/ansi_up.js", "AnsiUp").then((AnsiUp) => {
      if (!AnsiUp) return null;
      const converter = new AnsiUp();
      converter.use_classes = true;  // colours from cellbus.css, readable on its background
      return converter;
    });
  }

  /** Show `text` in `node`: at once without colours, then (once ansi_up is here) with. */
  function showAnsi(node, text) {
    node.textContent = stripAnsi(text);
    if (!ANSI_ESCAPE.test(text)) return;
    ansiConverter().then((converter) => {
      if (converter) node.innerHTML = converter.ansi_to_html(text);  // it escapes the text
    });
  }

  // Markdown cells are rendered by marked and sanitized by DOMPurify, classic scripts from
  // npm (pinned in package.json) that the gateway serves from static/vendor/, loaded the
  // first time a Markdown cell is rendered. Markdown may carry raw HTML: what DOMPurify
  // keeps of it is inert (no script, no event handler attributes, no javascript: URLs), and
  // these settings drop what could still act or load a page: SVG and MathML, frames,
  // objects, forms and their controls, style sheets, and <base>, <meta> and <link>.
  const MARKDOWN_PURIFY = {
    USE_PROFILES: {html: true},
    FORBID_TAGS: ["style", "form", "input", "button", "select", "textarea", "option", "iframe",
                  "frame", "frameset", "object", "embed", "link", "meta", "base", "dialog"],
    FORBID_ATTR: ["style", "action", "formaction", "ping", "srcset"],
    RETURN_DOM_FRAGMENT: true,
  };

  /** Show Markdown `source` in `node`: as plain text at once (and for good if marked or
   * DOMPurify cannot load), then as sanitized HTML whose links open in a new tab. */
  function showMarkdown(node, source) {
    node.textContent = source;
    return Promise.all([vendorScript("vendor/marked/marked.umd.js", "marked"),
                        vendorScript("vendor/dompurify/purify.min.js", "DOMPurify")])
      .then(([marked, purify]) => {
        if (!marked || !purify || !purify.isSupported) return;
        const html = purify.sanitize(marked.parse(source, {async: false}), MARKDOWN_PURIFY);
        for (const a of html.querySelectorAll("a[href]")) {
          a.target = "_blank";
          a.rel = "noopener noreferrer";
        }
        node.replaceChildren(html);
      });
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

  /** `blocks`, each interact block with its nested output (`inner`: id -> its Fold). */
  function withInner(blocks, inner) {
    const out = {};
    for (const [id, block] of Object.entries(blocks)) {
      out[id] = inner[id] ? Object.assign({}, block, {output: inner[id].view()}) : block;
    }
    return out;
  }

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
      return withInner(this.blocks, this.inner);
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
        case "input_request": return this._inputRequest(seq, content);
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

    /** Show `inner` (a re-run's output, folded by the caller) as the output of the interact
     * `interactId`; later changes to `inner` show through. False if there is no such interact.
     * Mirrors CellOutput.replace_interact_output. */
    replaceInteractOutput(interactId, seq, inner) {
      const ids = Object.keys(this.blocks);
      for (let i = ids.length - 1; i >= 0; i--) {
        const block = this.blocks[ids[i]];
        if (block.type === "interact" && block.interact_id === interactId) {
          this.inner[ids[i]] = inner;
          block.seq = Math.max(block.seq, seq);
          return true;
        }
      }
      return Object.values(this.inner).some((f) => f.replaceInteractOutput(interactId, seq, inner));
    }

    /** Whether an interact `interactId` is among the blocks (nested ones too). */
    hasInteract(interactId) {
      for (const block of Object.values(this.blocks)) {
        if (block.type === "interact" && block.interact_id === interactId) return true;
      }
      return Object.values(this.inner).some((f) => f.hasInteract(interactId));
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

    /** A prompt (input(), getpass()): open while the session waits for the answer. */
    _inputRequest(seq, content) {
      const prompt = content.prompt === undefined ? "" : content.prompt;
      const password = content.password === undefined ? false : content.password;
      if (typeof prompt !== "string" || typeof password !== "boolean") return false;
      return this._add(seq, "input", {type: "input", prompt: prompt, password: password}, "open");
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

  /** Output blocks as the store gave them (after a reload), with what an interact's runs
   * need of a Fold: the same hasInteract, replaceInteractOutput and view. */
  class StoredBlocks {
    constructor(blocks) {
      this.blocks = Object.assign({}, blocks);
      this.inner = {};  // interact block id -> the Fold of its latest run
    }

    view() {
      return withInner(this.blocks, this.inner);
    }

    hasInteract(interactId) {
      return this._find(interactId) !== null;
    }

    replaceInteractOutput(interactId, seq, inner) {
      const id = this._find(interactId);
      if (id === null) return false;
      this.inner[id] = inner;
      const block = this.blocks[id];
      this.blocks[id] = Object.assign({}, block, {seq: Math.max(block.seq || 0, seq)});
      return true;
    }

    _find(interactId) {
      for (const [id, block] of Object.entries(this.blocks)) {
        if (block.type === "interact" && block.interact_id === interactId) return id;
      }
      return null;
    }
  }

  // ---- frames: active output runs in a sandbox of its own ----------------------------------

  // HTML output is the cell's to write, and so is any script in it (a plot drawn with
  // JavaScript, or an <img onerror>). It never runs in the page's origin, which holds the
  // sign-in and the code saved in localStorage, and can call the gateway's API as the user:
  // it runs in an iframe with sandbox="allow-scripts" and without allow-same-origin, so its
  // origin is opaque. Script in it runs, but it reads no cookie or storage of the page's
  // origin, calls the API without the user's credentials, cannot touch the page, and cannot
  // navigate it, open windows or submit forms. A script of ours in the frame posts its height
  // to the page, which sizes the frame if the message comes from that very frame. (Images,
  // SVG among them, are <img> elements, which run no script and load nothing.)
  const FRAME_SANDBOX = "allow-scripts";
  const FRAME_MESSAGE = "cellbus-frame-height";
  const FRAME_MAX_HEIGHT = 20000;  // px; taller output scrolls inside its frame
  const FRAME_HEAD = '<meta charset="utf-8"><meta name="referrer" content="no-referrer">'
    + "<style>html,body{margin:0}body{padding:1px 0;overflow-x:auto;"
    + "font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328}"
    + "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.2rem .5rem}"
    + "img,svg,canvas{max-width:100%}</style>"
    + "<script>(function(){var last=-1;function post(){"
    + "var h=Math.ceil(document.documentElement.getBoundingClientRect().height);"
    + "if(h!==last){last=h;parent.postMessage({type:'" + FRAME_MESSAGE + "',height:h},'*');}}"
    + "if(window.ResizeObserver)new ResizeObserver(post).observe(document.documentElement);"
    + "addEventListener('load',post);})();</script>";

  /** An iframe showing `html` in the sandbox (see above). */
  function sandboxedFrame(html, className) {
    const frame = el("iframe", "cellbus-frame " + className);
    frame.setAttribute("sandbox", FRAME_SANDBOX);
    frame.title = "HTML output";
    frame.srcdoc = "<!doctype html><html><head>" + FRAME_HEAD + "</head><body>" + html
      + "</body></html>";
    return frame;
  }

  window.addEventListener("message", (event) => {
    const data = event.data;
    if (!isObject(data) || data.type !== FRAME_MESSAGE || !Number.isFinite(data.height)) return;
    for (const frame of document.querySelectorAll("iframe.cellbus-frame")) {
      if (frame.contentWindow === event.source) {
        const height = Math.min(Math.max(Math.ceil(data.height), 0), FRAME_MAX_HEIGHT);
        frame.style.height = height + "px";
        return;
      }
    }
  });

  // ---- TextView: a text block, however long ------------------------------------------------

  // A print loop can write a million lines: drawn whole, they made a page millions of px
  // tall that took minutes to lay out, and nothing else on it moved meanwhile. A text block
  // shows at most its first HEAD_LINES and last TAIL_LINES lines (and HEAD_CHARS, TAIL_CHARS
  // of them: one line can be long too), "N lines hidden" between them with buttons to show
  // all (drawn SHOW_CHUNK characters per animation frame) or download it; and it scrolls
  // in a box of its own past a height (cellbus.css). Taking in new text costs what it adds.
  const HEAD_LINES = 200;
  const TAIL_LINES = 200;
  const HEAD_CHARS = 32768;
  const TAIL_CHARS = 32768;
  const SHOW_CHUNK = 262144;

  function countLines(text, from, to) {
    let n = 0;
    for (let i = text.indexOf("\n", from); i !== -1 && i < to; i = text.indexOf("\n", i + 1)) n++;
    return n;
  }

  /** Where the `n`th line of `text` ends (after its newline), at most `max`. */
  function headEnd(text, n, max) {
    let at = 0;
    for (let k = 0; k < n && at < max; k++) {
      const i = text.indexOf("\n", at);
      if (i === -1) return Math.min(text.length, max);
      at = i + 1;
    }
    return Math.min(at, max);
  }

  /** Where the last `n` lines of `text` (after `from`) start, at least length - `max`. */
  function tailStart(text, from, n, max) {
    let at = text.length - (text.endsWith("\n") ? 1 : 0);
    for (let k = 0; k < n; k++) {
      const i = text.lastIndexOf("\n", at - 1);
      if (i < from) return Math.max(from, text.length - max);
      at = i;
    }
    return Math.max(at + 1, text.length - max, from);
  }

  function download(text, name) {
    const url = URL.createObjectURL(new Blob([text], {type: "text/plain;charset=utf-8"}));
    const link = el("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  class TextView {
    constructor(block) {
      this.stream = block.stream;
      this.node = el("pre", "cellbus-text cellbus-" + (block.stream || "stdout"));
      if (block.mime) this.node.dataset.mime = block.mime;
      this.head = document.createTextNode("");
      this.node.appendChild(this.head);
      this.block = null;    // the block taken in (a Fold grows one block object in place)
      this.text = "";       // the block's text as taken in
      this.lines = 0;       // newlines in it
      this.cut = -1;        // where the head ends, once the text outgrew the cap
      this.drawn = -1;      // showing all: how much of the text is drawn
      this.pinned = true;   // the box follows the end of the text, as a terminal does, until
                            // the reader scrolls away from it
      this.node.addEventListener("scroll", () => {
        const n = this.node;
        this.pinned = n.scrollTop + n.clientHeight >= n.scrollHeight - 4;
      }, {passive: true});
      this.node.cellbusUpdate = (b) => this.update(b);
      this.update(block);
    }

    /** Take in the block's text; false if it is not this text grown (then redraw). The
     * same block object has only grown (Fold appends to it); another one (an /update
     * document, an interact's next run) is compared whole. */
    update(block) {
      const text = block.content;
      if (block.stream !== this.stream || typeof text !== "string" || text.length < this.text.length
          || (block !== this.block && !text.startsWith(this.text))) return false;
      this.block = block;
      const old = this.text.length;
      this.lines += countLines(text, old, text.length);
      this.text = text;
      if (this.drawn >= 0) this._drawMore();
      else if (this.cut < 0 && this.lines <= HEAD_LINES + TAIL_LINES
               && text.length <= HEAD_CHARS + TAIL_CHARS) this._append(text.slice(old));
      else this._capped();
      return true;
    }

    /** Text that fits under the cap: appended, in colour once the text has an escape. */
    _append(chunk) {
      if (this.colours) {
        this.colours.insertAdjacentHTML("beforeend", this.ansi.ansi_to_html(chunk));
        return;
      }
      this.head.appendData(stripAnsi(chunk));
      if (this.ansiAsked || !ANSI_ESCAPE.test(chunk)) return;
      this.ansiAsked = true;
      ansiConverter().then((converter) => {
        if (!converter || this.cut >= 0 || this.drawn >= 0) return;
        this.ansi = converter;
        this.colours = el("span", "cellbus-ansi");
        this.colours.innerHTML = converter.ansi_to_html(this.text);  // all of it, escaped
        this.head.replaceWith(this.colours);
      });
    }

    _capped() {
      const text = this.text;
      if (this.cut < 0) {  // past the cap, text is shown without colours
        this.cut = headEnd(text, HEAD_LINES, HEAD_CHARS);
        this.node.textContent = "";
        this.colours = null;
        this.head = document.createTextNode(stripAnsi(text.slice(0, this.cut)));
        this.node.appendChild(this.head);
        this.headLines = countLines(text, 0, this.cut);
        this.bar = el("span", "cellbus-hidden");
        this.label = el("span", "cellbus-hidden-count");
        const all = el("button", "cellbus-show-all", "Show all");
        all.type = "button";
        all.addEventListener("click", () => this.showAll());
        const save = el("button", "cellbus-download", "Download");
        save.type = "button";
        save.addEventListener("click", () => download(this.text, "output.txt"));
        this.bar.append(this.label, all, save);
        this.tail = document.createTextNode("");
        this.node.append(this.bar, this.tail);
        this.node.classList.add("cellbus-long");
      }
      const start = tailStart(text, this.cut, TAIL_LINES, TAIL_CHARS);
      this.tail.data = stripAnsi(text.slice(start));
      const hidden = this.lines - this.headLines - countLines(text, start, text.length);
      const chars = start - this.cut;
      this.label.textContent = hidden > 0
        ? hidden.toLocaleString("en-US") + " lines hidden (" + sizeText(chars) + ")"
        : sizeText(chars) + " hidden";
      if (this.pinned) this.node.scrollTop = this.node.scrollHeight;
    }

    /** Every line, drawn SHOW_CHUNK characters per animation frame. */
    showAll() {
      if (this.drawn >= 0) return;
      this.drawn = 0;
      this.node.textContent = "";
      this.head = this.bar = this.tail = this.colours = null;
      this.node.classList.remove("cellbus-long");
      this._drawMore();
    }

    _drawMore() {
      if (this.drawing) return;
      this.drawing = true;
      requestAnimationFrame(() => {
        this.drawing = false;
        const end = Math.min(this.text.length, this.drawn + SHOW_CHUNK);
        this.node.appendChild(document.createTextNode(stripAnsi(this.text.slice(this.drawn, end))));
        this.drawn = end;
        if (end < this.text.length) this._drawMore();
      });
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

  /** Block type -> function(block, render, cell) returning a DOM node; `render(blocks)` renders
   * nested output; `cell` is the Cell showing it (null outside one). A node with a
   * `cellbusUpdate(block)` method that returns true is updated in place instead of redrawn. */
  const renderers = {
    text(block) {
      return new TextView(block).node;  // capped, however long (see TextView)
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
      return sandboxedFrame(block.content, "cellbus-html");  // script in it runs, sandboxed
    },
    error(block) {
      const pre = el("pre", "cellbus-error");
      const tb = block.traceback;
      const text = tb.length ? tb.join("") : block.ename + ": " + block.evalue;
      showAnsi(pre, text.replace(/\n$/, ""));
      return pre;
    },
    interact(block, render, cell) {
      return new InteractView(block, cell).node;
    },
    input(block, render, cell) {
      return promptView(block, cell);
    },
  };

  /** A pending prompt: its text and a box (masked for a password) whose Enter sends the
   * answer (POST …/input). Once the session has the answer the block closes and shows
   * nothing: the session echoes the prompt and answer (never a password) as output. */
  function promptView(block, cell) {
    const node = el("div", "cellbus-prompt");
    if (block.state !== "open" || !cell) {
      node.hidden = true;
      return node;
    }
    const label = el("label", "cellbus-prompt-label");
    label.appendChild(el("span", "cellbus-prompt-text", block.prompt));
    const box = el("input", "cellbus-prompt-input");
    box.type = block.password ? "password" : "text";
    box.autocomplete = block.password ? "current-password" : "off";
    box.spellcheck = false;
    label.appendChild(box);
    const notice = el("span", "cellbus-prompt-notice");
    notice.setAttribute("role", "status");
    node.append(label, notice);
    box.addEventListener("keydown", async (event) => {
      if (event.key !== "Enter" || box.disabled) return;
      event.preventDefault();
      box.disabled = true;
      notice.textContent = "";
      const error = await cell.answerPrompt(box.value, block.seq);
      if (error === null) return;  // the block closes when the session goes on
      notice.textContent = error;
      box.disabled = false;
    });
    node.cellbusUpdate = (next) => next.state === "open" && next.prompt === block.prompt;
    setTimeout(() => { if (box.isConnected) box.focus({preventScroll: true}); }, 0);
    return node;
  }

  function renderUnknown(block) {
    return el("pre", "cellbus-text cellbus-unknown", "[" + block.type + " output]");
  }

  function sortedBlocks(blocks) {
    return Object.entries(blocks).sort((a, b) => a[1].order - b[1].order);
  }

  /** A node for each block of `blocks`, in order (used for nested output). */
  function renderAll(blocks, cell) {
    const box = el("div", "cellbus-blocks");
    for (const [id, block] of sortedBlocks(blocks)) box.appendChild(renderBlock(id, block, cell));
    return box;
  }

  function renderBlock(id, block, cell) {
    const render = renderers[block.type] || renderUnknown;
    const node = render(block, (blocks) => renderAll(blocks, cell), cell || null);
    node.classList.add("cellbus-block");
    node.dataset.block = id;
    return node;
  }

  /** Keeps an output element showing a set of blocks; redraws only what changed. */
  class OutputView {
    constructor(element, cell) {
      this.element = element;
      this.cell = cell || null;  // what interact controls send their changes through
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
      // A node that can take the new block itself: a growing text appends only what is new
      // (TextView), an interact's controls stay put while its output changes under them.
      if (entry && entry.type === block.type && typeof entry.node.cellbusUpdate === "function"
          && entry.node.cellbusUpdate(block)) {
        return Object.assign(entry, {seq: block.seq, block: block});
      }
      const node = renderBlock(id, block, this.cell);
      if (entry) entry.node.replaceWith(node);
      return {node: node, seq: block.seq, block: block, type: block.type};
    }

    clear() {
      this.update({});
      this.element.textContent = "";
    }

    get empty() {
      return this.shown.size === 0;
    }
  }

  // ---- InteractView: the controls of an @interact, and its output under them ---------------

  // Over HTTP, after an interact request: poll /update (long-polling when the server waits),
  // at least INTERACT_POLL_MIN ms apart and backing off to INTERACT_POLL_MAX while nothing
  // changes, until nothing has changed for INTERACT_FOLLOW_IDLE ms.
  const INTERACT_POLL_WAIT = 10;  // s
  const INTERACT_POLL_MIN = 150;
  const INTERACT_POLL_MAX = 1500;
  const INTERACT_FOLLOW_IDLE = 10000;
  let controlCount = 0;
  const interactStates = new Map();  // interact_id -> the last state this page sent

  /** Each request's state is above the last, also across reloads of the page (the clock). */
  function nextState(interactId) {
    const state = Math.max((interactStates.get(interactId) || 0) + 1, Date.now());
    interactStates.set(interactId, state);
    return state;
  }

  function finiteOr(x, fallback) {
    const n = typeof x === "number" ? x : typeof x === "string" && x.trim() ? Number(x) : NaN;
    return Number.isFinite(n) ? n : fallback;
  }

  function asText(x) {
    if (x === null || x === undefined) return "";
    if (typeof x === "string") return x;
    return typeof x === "object" ? JSON.stringify(x) : String(x);
  }

  /** The value a control starts with, in the form the browser sends (see CONTROLS). */
  function initialValue(c) {
    switch (c.type) {
      case "slider": return finiteOr(c.default, finiteOr(c.start, 0));
      case "range_slider": {
        const d = Array.isArray(c.default) ? c.default : [];
        return [finiteOr(d[0], finiteOr(c.start, 0)), finiteOr(d[1], finiteOr(c.end, 100))];
      }
      case "input_box": return asText(c.default);
      case "checkbox": return c.default === true;
      case "selector": return Number.isInteger(c.default) ? c.default : 0;
      case "color_selector":
        return typeof c.default === "string" && /^#[0-9a-f]{6}$/i.test(c.default)
          ? c.default.toLowerCase() : "#000000";
      case "input_grid": {
        const rows = Math.max(0, Math.min(finiteOr(c.rows, 1) | 0, 100));
        const cols = Math.max(0, Math.min(finiteOr(c.cols, 1) | 0, 100));
        const d = Array.isArray(c.default) ? c.default : [];
        const grid = [];
        for (let r = 0; r < rows; r++) {
          const row = Array.isArray(d[r]) ? d[r] : [];
          const out = [];
          for (let k = 0; k < cols; k++) out.push(asText(row[k]));
          grid.push(out);
        }
        return grid;
      }
      case "button": return false;
      default: return c.default === undefined ? null : c.default;
    }
  }

  /** Whether `value` has the form of `like` (a control's initial value): the same type,
   * and for arrays the same length, element by element. */
  function sameForm(like, value) {
    if (Array.isArray(like)) {
      return Array.isArray(value) && value.length === like.length
        && like.every((x, i) => sameForm(x, value[i]));
    }
    if (typeof like === "number") return typeof value === "number" && Number.isFinite(value);
    return typeof value === typeof like && (like !== null || value === null);
  }

  /** The value control `c` starts with: `value` (from a shared link) if it has the form the
   * control sends (a colour as #rrggbb), else the control's initial value. */
  function presetValue(c, value) {
    const initial = initialValue(c);
    if (value === undefined || c.type === "button" || !sameForm(initial, value)) return initial;
    if (c.type === "color_selector" && !/^#[0-9a-f]{6}$/i.test(value)) return initial;
    return c.type === "color_selector" ? value.toLowerCase() : value;
  }

  function sliderBounds(c) {
    const start = finiteOr(c.start, 0);
    const end = Math.max(start, finiteOr(c.end, 100));
    const step = finiteOr(c.step, 1);
    return {start: start, end: end, step: step > 0 ? step : "any"};
  }

  function rangeInput(c, value) {
    const b = sliderBounds(c);
    const input = el("input", "cellbus-slider");
    input.type = "range";
    input.min = b.start;
    input.max = b.end;
    input.step = b.step;
    input.value = value;
    return input;
  }

  /** A text input that commits (sends) on Enter or when it loses focus changed. */
  function committingInput(className, value, commit) {
    const input = el("input", className);
    input.type = "text";
    input.value = value;
    input.spellcheck = false;
    input.autocomplete = "off";
    input.setAttribute("autocapitalize", "off");
    let committed = value;
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.isComposing) return;
      event.preventDefault();
      committed = input.value;
      commit(input.value, true);
    });
    input.addEventListener("change", () => {
      if (input.value === committed) return;
      committed = input.value;
      commit(input.value, false);
    });
    return input;
  }

  /** Control type -> function(view, name, control, id, labelId) returning
   * [node, labelled]: `labelled` true when the node (or its input) has the id `id`, so a
   * <label for> names it; otherwise the node names itself with aria-labelledby. */
  const CONTROLS = {
    slider(view, name, c, id) {
      const input = rangeInput(c, view.values[name]);
      input.id = id;
      const shown = el("output", "cellbus-control-value", input.value);
      shown.setAttribute("for", id);
      input.addEventListener("input", () => {
        shown.textContent = input.value;
        view.changed(name, Number(input.value));
      });
      const box = el("span", "cellbus-slider-box");
      box.append(input, shown);
      return [box, true];
    },
    range_slider(view, name, c, id, labelId) {
      const value = view.values[name];
      const lo = rangeInput(c, value[0]), hi = rangeInput(c, value[1]);
      lo.id = id;
      lo.setAttribute("aria-label", view.labelOf(name) + ", from");
      hi.setAttribute("aria-label", view.labelOf(name) + ", to");
      const shown = el("output", "cellbus-control-value");
      shown.setAttribute("for", id + " " + id + "-hi");
      hi.id = id + "-hi";
      const show = () => {
        const ends = [Number(lo.value), Number(hi.value)].sort((a, b) => a - b);
        shown.textContent = ends[0] + " – " + ends[1];
        return ends;
      };
      show();
      const changed = () => view.changed(name, show());
      lo.addEventListener("input", changed);
      hi.addEventListener("input", changed);
      const box = el("span", "cellbus-slider-box cellbus-range-box");
      box.setAttribute("role", "group");
      box.setAttribute("aria-labelledby", labelId);
      box.append(lo, hi, shown);
      return [box, false];
    },
    input_box(view, name, c, id) {
      const input = committingInput("cellbus-input-box", view.values[name],
                                    (text, enter) => view.changed(name, text, enter));
      input.id = id;
      if (typeof c.value_type === "string" && c.value_type !== "str") {
        input.dataset.valueType = c.value_type;
      }
      return [input, true];
    },
    checkbox(view, name, c, id) {
      const input = el("input", "cellbus-checkbox");
      input.type = "checkbox";
      input.id = id;
      input.checked = view.values[name];
      input.addEventListener("change", () => view.changed(name, input.checked));
      return [input, true];
    },
    selector(view, name, c, id, labelId) {
      const labels = Array.isArray(c.values) ? c.values.map(asText) : [];
      const current = view.values[name];
      if (c.buttons) {
        const group = el("span", "cellbus-choices");
        group.setAttribute("role", "group");
        group.setAttribute("aria-labelledby", labelId);
        const buttons = labels.map((text, i) => {
          const b = el("button", "cellbus-choice", text);
          b.type = "button";
          b.setAttribute("aria-pressed", String(i === current));
          b.addEventListener("click", () => {
            for (const other of buttons) other.setAttribute("aria-pressed", String(other === b));
            view.changed(name, i);
          });
          group.appendChild(b);
          return b;
        });
        if (buttons.length) buttons[0].id = id;
        return [group, false];
      }
      const select = el("select", "cellbus-select");
      select.id = id;
      labels.forEach((text, i) => {
        const option = el("option", null, text);
        option.value = String(i);
        select.appendChild(option);
      });
      select.selectedIndex = current < labels.length ? current : 0;
      select.addEventListener("change", () => view.changed(name, Number(select.value)));
      return [select, true];
    },
    color_selector(view, name, c, id) {
      const input = el("input", "cellbus-color");
      input.type = "color";
      input.id = id;
      input.value = view.values[name];
      const shown = el("output", "cellbus-control-value", input.value);
      shown.setAttribute("for", id);
      input.addEventListener("input", () => {
        shown.textContent = input.value;
        view.changed(name, input.value.toLowerCase());
      });
      const box = el("span", "cellbus-color-box");
      box.append(input, shown);
      return [box, true];
    },
    input_grid(view, name, c, id, labelId) {
      const grid = view.values[name];
      const table = el("table", "cellbus-grid");
      table.setAttribute("aria-labelledby", labelId);
      const body = el("tbody");
      grid.forEach((row, r) => {
        const tr = el("tr");
        row.forEach((text, k) => {
          const td = el("td");
          const input = committingInput("cellbus-grid-input", text, (value, enter) => {
            const copy = view.values[name].map((cells) => cells.slice());
            copy[r][k] = value;
            view.changed(name, copy, enter);
          });
          if (r === 0 && k === 0) input.id = id;
          input.setAttribute("aria-label",
                             view.labelOf(name) + ", row " + (r + 1) + ", column " + (k + 1));
          td.appendChild(input);
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      table.appendChild(body);
      return [table, false];
    },
    button(view, name, c, id) {
      const text = typeof c.text === "string" && c.text ? c.text : view.labelOf(name);
      const b = el("button", "cellbus-control-button", text);
      b.type = "button";
      b.id = id;
      b.addEventListener("click", () => view.send({[name]: true}));
      return [b, false];
    },
    unknown(view, name, c) {
      return [el("span", "cellbus-control-unknown",
                 "(a " + asText(c.type) + " control, which this page cannot show)"), false];
    },
  };

  /** One interact block on screen: its controls, built once, and its output below them, which
   * later runs replace (see Cell._interactMessage). The controls stay the same elements while
   * the output changes, so a slider being dragged keeps its grip. */
  class InteractView {
    constructor(block, cell) {
      this.id = block.interact_id;
      this.cell = cell || null;
      this.controls = isObject(block.controls) ? block.controls : {};
      this.autoUpdate = block.auto_update !== false;
      this.values = {};
      this.waitingFor = 0;  // the state of the last request sent that has not finished
      // Values a shared link carried (Cell.presetInteract) start the controls where they were.
      const preset = cell ? cell._takePreset() : null;
      for (const [name, c] of Object.entries(this.controls)) {
        this.values[name] = isObject(c) ? presetValue(c, preset && preset[name]) : null;
      }
      const node = this.node = el("div", "cellbus-interact");
      node.dataset.interactId = this.id;
      node.setAttribute("role", "group");
      node.setAttribute("aria-label", "interact");
      const form = el("div", "cellbus-interact-controls");
      const layout = Array.isArray(block.layout) ? block.layout : Object.keys(this.controls);
      for (const name of layout) {
        if (typeof name === "string" && isObject(this.controls[name])) {
          form.appendChild(this._control(name, this.controls[name]));
        }
      }
      const actions = el("div", "cellbus-interact-actions");
      if (!this.autoUpdate) {
        this.updateButton = el("button", "cellbus-interact-update", "Update");
        this.updateButton.type = "button";
        this.updateButton.addEventListener("click", () => this.send());
        actions.appendChild(this.updateButton);
      }
      this.working = el("span", "cellbus-working");
      this.working.hidden = true;
      this.working.setAttribute("aria-hidden", "true");
      this.statusText = el("span", "cellbus-interact-status");
      this.statusText.setAttribute("role", "status");
      actions.append(this.working, this.statusText);
      form.appendChild(actions);
      this.notice = el("div", "cellbus-interact-notice");
      this.notice.setAttribute("role", "alert");
      this.notice.hidden = true;
      this.output = el("div", "cellbus-interact-output");
      this.view = new OutputView(this.output, this.cell);
      node.append(form, this.notice, this.output);
      this.view.update(isObject(block.output) ? block.output : {});
      node.cellbusUpdate = (b) => this.update(b);
      if (this.cell) this.cell._registerInteract(this);
      // Run the function with the preset values, so the output is theirs (after this draw).
      if (preset) Promise.resolve().then(() => this.send());
    }

    /** The controls' values by name (buttons have none): what Share keeps. */
    shareable() {
      const values = {};
      for (const [name, c] of Object.entries(this.controls)) {
        if (isObject(c) && c.type !== "button") values[name] = this.values[name];
      }
      return values;
    }

    labelOf(name) {
      const label = this.controls[name].label;
      return label === null || label === undefined || label === "" ? name : asText(label);
    }

    _control(name, c) {
      const id = "cellbus-control-" + (++controlCount);
      const type = typeof c.type === "string" && CONTROLS[c.type] && c.type !== "unknown"
        ? c.type : "unknown";
      const row = el("div", "cellbus-control cellbus-control-" + type);
      row.dataset.control = name;
      const [node, labelled] = CONTROLS[type](this, name, c, id, id + "-label");
      const label = el(labelled ? "label" : "span", "cellbus-control-label", this.labelOf(name));
      label.id = id + "-label";
      if (labelled) label.htmlFor = id;
      row.append(label, node);
      return row;
    }

    /** A control's value changed; `commit` is an explicit Enter in a text box. */
    changed(name, value, commit) {
      this.values[name] = value;
      if (this.autoUpdate) {
        this.send();
      } else {
        this.updateButton.classList.add("cellbus-dirty");
        if (commit) this.send();
      }
    }

    /** Run the function with the current values (and `extra`: a pressed button's true). */
    send(extra) {
      const values = {};
      for (const [name, c] of Object.entries(this.controls)) {
        values[name] = isObject(c) && c.type === "button" ? false : this.values[name];
      }
      Object.assign(values, extra || {});
      if (this.updateButton) this.updateButton.classList.remove("cellbus-dirty");
      if (!this.cell) {
        this.refused("this interact is not part of a cell");
        return;
      }
      this.cell._sendInteract(this, values);
    }

    /** The output blocks changed (a run, or the cell's own output): keep the controls. */
    update(block) {
      if (block.interact_id !== this.id) return false;
      this.view.update(isObject(block.output) ? block.output : {});
      return true;
    }

    sent(state) {
      this.waitingFor = state;
      this.notice.hidden = true;
      this.working.hidden = false;
      this.node.setAttribute("aria-busy", "true");
      this.statusText.textContent = "updating…";
    }

    /** A run (or a skipped stale request) of `state` finished. */
    finished(state) {
      if (!Number.isInteger(state) || state < this.waitingFor) return;
      this._idle();
    }

    refused(error) {
      this.failed("The server refused this update: " + error);
    }

    failed(text) {
      this._idle();
      this.notice.textContent = text;
      this.notice.hidden = false;
    }

    _idle() {
      this.waitingFor = 0;
      this.working.hidden = true;
      this.node.removeAttribute("aria-busy");
      this.statusText.textContent = "";
    }
  }

  // ---- PollTransport: the HTTP API (POST evaluate, long-poll update) ------------------------

  /** The HTTP API behind the same interface as Channel (evaluate, interrupt, interact,
   * follow, document, register, forget, connected), for pages where no WebSocket gets
   * through. It tells a cell what happens by the same calls Channel makes: _accepted,
   * _running, _show, _finish, _failed, _connection and the _interact* ones. Over HTTP the
   * cell sees whole blocks (/update's), not messages to fold. */
  class PollTransport {
    constructor(server, token) {
      this.server = server;
      this.token = token;
      this.cells = new WeakMap();  // cell -> its HTTP state (see _of)
    }

    register() {}  // nothing to subscribe to

    unregister() {}

    forget() {}

    get connected() {
      return true;
    }

    /** A cell's HTTP state: the blocks shown and the seq they are at, its interact POSTs
     * (one at a time per interact) and the run being followed. */
    _of(cell) {
      let s = this.cells.get(cell);
      if (!s) {
        s = {blocks: {}, seq: 0, interacts: new Map(), follow: null, active: 0, following: false};
        this.cells.set(cell, s);
      }
      return s;
    }

    url(cell, action) {
      const parts = [cell.user, cell.worksheet, cell.cellId].map(encodeURIComponent);
      return this.server + "home/" + parts.join("/") + "/" + action;
    }

    /** fetch(), with the token (if there is one) in an Authorization header. */
    fetch(url, init) {
      if (!this.token) return fetch(url, init);
      const o = Object.assign({}, init || {});
      o.headers = Object.assign({}, o.headers || {}, {Authorization: "Bearer " + this.token});
      return fetch(url, o);
    }

    /** Why a fetch() to the gateway failed. A browser hides why: a page of an origin the
     * gateway does not allow (--allow-origin) sees a network error. A plain GET (no
     * preflight, no token) then gets the gateway's 403, which that origin may read. */
    async whyFailed(cell) {
      try {
        const r = await fetch(this.url(cell, "update"), {cache: "no-store"});
        const body = await r.json().catch(() => ({}));
        if (r.status === 403 && typeof body.error === "string") {
          return "The server refuses this page: " + body.error;
        }
      } catch (e) { /* not reached indeed */ }
      return "Could not reach the server; check the connection and try again.";
    }

    /** The cell's /update document after `since` (waiting up to `wait` s), or null. */
    async document(cell, since, wait) {
      try {
        const r = await this.fetch(this.url(cell, "update?since=" + since
                                             + (wait ? "&wait=" + wait : "")), {cache: "no-store"});
        return r.ok ? await r.json() : null;
      } catch (e) {
        return null;
      }
    }

    /** POST `code`; the msg_id goes to cell._accepted when the gateway has taken it. */
    evaluate(cell, code) {
      this._evaluate(cell, code);
      return null;
    }

    async _evaluate(cell, code) {
      const gen = cell.generation;
      let r, body;
      try {
        r = await this.fetch(this.url(cell, "evaluate"), {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(cell.options.kernel ? {input: code, kernel: cell.options.kernel}
                               : {input: code}),
        });
        body = await r.json().catch(() => ({}));
      } catch (e) {
        const why = await this.whyFailed(cell);
        if (gen === cell.generation) cell._failed(why);
        return;
      }
      if (gen !== cell.generation) return;
      if (r.status !== 202) {
        cell._failed("The server refused this evaluation: " + (body.error || "HTTP " + r.status));
        return;
      }
      cell._accepted(body.msg_id, body.status || "needs_work");
      this.follow(cell, body.msg_id, null);
    }

    /** Show request `msgId` of `cell` as it goes on, until it ends: from `doc` (an /update
     * document already shown) or from nothing. */
    async follow(cell, msgId, doc) {
      const s = this._of(cell);
      s.blocks = doc ? Object.assign({}, doc.output) : {};
      s.seq = doc && Number.isInteger(doc.seq) ? doc.seq : 0;
      let delay = 500;
      while (cell.requestId === msgId && cell.busy) {
        const next = await this.document(cell, s.seq, 20);
        if (cell.requestId !== msgId || !cell.busy) return;
        if (!next) {
          cell._connection(false);
          await sleep(delay);
          delay = Math.min(delay * 2, 5000);
          continue;
        }
        delay = 500;
        cell._connection(true);
        if (next.request && next.request !== msgId) {
          cell._finish("superseded");
          return;
        }
        this._showDocument(cell, next);
        if (next.status === "working") cell._running();
        if (next.status === "done" || next.status === "error") {
          showUsage(cell, next.usage);
          cell._finish(next.status);
          return;
        }
      }
    }

    /** Show what changed in an /update answer. */
    _showDocument(cell, doc) {
      const s = this._of(cell);
      if (doc.reset) s.blocks = {};
      if (Object.keys(doc.output).length || doc.reset) {
        s.blocks = Object.assign({}, s.blocks, doc.output);
        cell._show(s.blocks);
      }
      if (Number.isInteger(doc.seq)) s.seq = doc.seq;
    }

    interrupt(cell) {
      this.fetch(this.url(cell, "interrupt"), {method: "POST"}).catch(() => {});
    }

    restart(cell) {
      this.fetch(this.url(cell, "restart"), {method: "POST"}).catch(() => {});
    }

    /** POST an interact request, one at a time per interact (the newest waiting one next),
     * then follow the cell's /update until that run is done. */
    async interact(cell, content) {
      const id = content.interact_id;
      const interacts = this._of(cell).interacts;
      let slot = interacts.get(id);
      if (!slot) {
        slot = {busy: false, next: null};
        interacts.set(id, slot);
      }
      if (slot.busy) {
        if (!slot.next || slot.next.state < content.state) slot.next = content;
        return;
      }
      slot.busy = true;
      const gen = cell.generation;
      try {
        while (content && gen === cell.generation) {
          let r, body;
          try {
            r = await this.fetch(this.url(cell, "interact"), {
              method: "POST", headers: {"Content-Type": "application/json"},
              body: JSON.stringify(content),
            });
            body = await r.json().catch(() => ({}));
          } catch (e) {
            r = null;
          }
          if (!r) {
            cell._interactFailed(id, await this.whyFailed(cell));
          } else if (r.status !== 202) {
            cell._interactRefused(id, body.error || "HTTP " + r.status);
          } else {
            this._followInteract(cell, content);
          }
          content = slot.next;
          slot.next = null;
        }
      } finally {
        slot.busy = false;
      }
    }

    /** Poll /update, showing the blocks as they change, until nothing has changed for
     * INTERACT_FOLLOW_IDLE after the last request sent. (/update tells no run's end: its
     * document stays the cell's finished evaluation, with each interact's latest output in
     * it, and a finished cell's /update answers at once rather than waiting.) */
    async _followInteract(cell, content) {
      const s = this._of(cell);
      s.follow = content;  // the newest request sent; cleared by the first change after it
      s.active = performance.now();
      if (s.following) return;
      s.following = true;
      const gen = cell.generation;
      let delay = INTERACT_POLL_MIN;
      try {
        while (gen === cell.generation && performance.now() - s.active < INTERACT_FOLLOW_IDLE) {
          const follow = s.follow;
          const asked = performance.now();
          const doc = await this.document(cell, s.seq, INTERACT_POLL_WAIT);
          if (gen !== cell.generation) return;
          const changed = doc !== null && (Object.keys(doc.output).length > 0 || doc.reset);
          if (doc) this._showDocument(cell, doc);
          if (changed) {  // (which run it shows, /update does not say: take it as the newest)
            s.active = performance.now();
            if (s.follow) this._runShown(cell, s.follow);
          }
          if (changed || s.follow !== follow) {
            delay = INTERACT_POLL_MIN;
          } else if (performance.now() - asked < delay) {  // the server did not wait: we do
            await sleep(delay);
            delay = Math.min(delay * 2, INTERACT_POLL_MAX);
          }
        }
        if (s.follow) this._runShown(cell, s.follow);
      } finally {
        s.following = false;
      }
    }

    _runShown(cell, content) {
      const s = this._of(cell);
      if (s.follow === content) s.follow = null;
      cell._interactFinished(content.interact_id, content.state);
    }
  }

  // ---- Channel: one WebSocket per gateway, shared by every cell of the page ---------------

  const RECONNECT_MIN = 250;     // ms, doubled per failed attempt
  const RECONNECT_MAX = 3000;
  const CONNECT_TIMEOUT = 5000;  // ms for a socket to open
  const FAILURES_BEFORE_POLLING = 2;
  const RESYNC_DELAY = 5000;     // ms after a reconnect before a running cell checks /update
  // The gateway closes a socket that left too much output unread with this code: connect
  // again and resume from the last seq (the store has it all), after a pause that doubles
  // with each such close in a row, so a slow client does not come back into the same flood.
  const TOO_SLOW = 4008;
  const SLOW_RECONNECT_MIN = 1000;   // ms
  const SLOW_RECONNECT_MAX = 30000;
  const SLOW_FORGET = 60000;         // ms a socket lasts for earlier slow closes not to count

  class Channel {
    constructor(server, token) {
      this.server = server;
      this.wsUrl = server.replace(/^http/, "ws") + "ws"
        + (token ? "?token=" + encodeURIComponent(token) : "");  // no headers on a WebSocket
      this.mode = window.WebSocket ? "websocket" : "poll";
      this.ws = null;
      this.up = false;          // the current socket has subscribed
      this.everUp = false;      // some socket has subscribed, so WebSocket works here
      this.failures = 0;        // sockets in a row that closed before any answer
      this.slowCloses = 0;      // sockets in a row the gateway closed as too slow (TOO_SLOW)
      this.subs = new Map();    // "user/worksheet" -> {user, worksheet, session, last, cells}
      this.requests = new Map();  // msg_id -> {cell, header, msg, sent, accepted, kind}
      this.clientSession = newId();
      this.timer = null;
      this.poll = new PollTransport(server, token);  // once no WebSocket gets through
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

    unregister(cell) {
      const sub = this.subs.get(cell.user + "/" + cell.worksheet);
      if (sub) sub.cells.delete(cell);
    }

    get connected() {
      return this.mode === "poll" || this.up;
    }

    /** Evaluate `code` in `cell`: the request's msg_id, or null when it is known only later
     * (over HTTP: then cell._accepted names it). */
    evaluate(cell, code) {
      const content = {code: code};
      if (cell.options.kernel) content.kernel = cell.options.kernel;
      const msgId = this.request(cell, "execute_request", content);
      return msgId !== null ? msgId : this.poll.evaluate(cell, code);
    }

    interrupt(cell) {
      if (this.request(cell, "interrupt_request", {}) === null) this.poll.interrupt(cell);
    }

    interact(cell, content) {
      if (this.request(cell, "interact_request", content) === null) this.poll.interact(cell, content);
    }

    /** The worksheet's next request gets a fresh session (its variables are gone). */
    restart(cell) {
      if (this.request(cell, "restart_request", {}) === null) this.poll.restart(cell);
    }

    /** Show request `msgId` of `cell` (sent before this page loaded) until it ends, from
     * `doc`, its /update document as shown. Over HTTP in either mode: this socket's replay
     * may have passed that request's messages before the page knew the request. */
    follow(cell, msgId, doc) {
      this.poll.follow(cell, msgId, doc);
    }

    /** The cell's /update document after `since` (waiting up to `wait` s), or null. */
    document(cell, since, wait) {
      return this.poll.document(cell, since, wait);
    }

    /** The cell's URL for `action` (evaluate, update, restart...). */
    url(cell, action) {
      return this.poll.url(cell, action);
    }

    fetch(url, init) {
      return this.poll.fetch(url, init);
    }

    /** Send an execute (interrupt, interact) request for `cell`; returns the request's msg_id,
     * or null when the page uses HTTP instead (the cell then does it itself). */
    request(cell, msgType, content) {
      if (this.mode === "poll") return null;
      if (msgType === "interact_request") {  // a newer state makes unsent older ones moot
        for (const [msgId, record] of this.requests) {
          if (record.kind === msgType && !record.sent && record.cell === cell
              && record.msg.content.interact_id === content.interact_id) {
            this.requests.delete(msgId);
          }
        }
      }
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
        ws.openedAt = Date.now();
        for (const sub of this.subs.values()) this._subscribe(sub);
        this._resend();
      };
      ws.onmessage = (event) => {
        answered = true;
        this._receive(event.data);
      };
      ws.onclose = (event) => {
        clearTimeout(guard);
        if (this.ws === ws) this._closed(ws, answered, event.code);
      };
    }

    _closed(ws, answered, code) {
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
      this._reconnectSoon(this._backoff(ws, code));
    }

    /** ms before the next socket: doubling per failure, and from a longer start after the
     * gateway closed a socket as too slow. */
    _backoff(ws, code) {
      if (code !== TOO_SLOW) {
        this.slowCloses = 0;
        return Math.min(RECONNECT_MAX, RECONNECT_MIN * 2 ** Math.max(0, this.failures - 1));
      }
      const lasted = ws && ws.openedAt ? Date.now() - ws.openedAt : 0;
      this.slowCloses = lasted > SLOW_FORGET ? 1 : this.slowCloses + 1;
      return Math.min(SLOW_RECONNECT_MAX, SLOW_RECONNECT_MIN * 2 ** (this.slowCloses - 1));
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
          this.poll.evaluate(record.cell, record.msg.content.code);
        } else if (record.kind === "interact_request" && !record.accepted) {
          this.poll.interact(record.cell, record.msg.content);  // they go one after the other
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
          const doc = await this.poll.document(record.cell, 0);
          if (this.requests.get(msgId) !== record) continue;
          if (doc && doc.request === msgId) {
            record.accepted = true;
            record.cell._accepted(msgId, doc.status);
            continue;
          }
        }
        // An interrupt: let it go. (An interact request is sent again: one that got through
        // already is answered 409, or skipped as stale by its state.)
        if (record.unsure && record.kind === "interrupt_request") {
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
        if (content.session && content.session !== sub.session) this._newSession(sub, content.session);
        if (Number.isInteger(content.seq)) sub.last = Math.max(sub.last, content.seq);
        this._adoptPrompts(sub);
      }
      if (!this.up) {
        if (this.everUp) setTimeout(() => this._eachCell((cell) => cell._resync()), RESYNC_DELAY);
        this.up = this.everUp = true;
        this.failures = 0;
        this._tellCells(true);
      }
    }

    /** While a subscription replays, note the prompts of runs this page did not start that
     * still wait (nothing of the run came after its prompt). */
    _notePrompt(sub, msg, facts, parent) {
      if (!sub.prompts) sub.prompts = new Map();
      if (msgTypeOf(msg) === "input_request" && sub.pending) {
        sub.prompts.set(parent, {seq: facts.seq, msg: msg, cellId: String(facts.cell_id)});
      } else {
        sub.prompts.delete(parent);
      }
    }

    /** After a replay (a page that reloaded): a cell with no run of its own takes over a run
     * of its that waits on a prompt, so the box shows again and the rest of the run follows. */
    _adoptPrompts(sub) {
      const prompts = sub.prompts || new Map();
      sub.prompts = new Map();
      for (const [parent, prompt] of prompts) {
        for (const cell of sub.cells) {
          if (cell.cellId !== prompt.cellId || !cell.adoptRun(parent)) continue;
          this.requests.set(parent, {cell: cell, msg: null, kind: "execute_request", sent: true,
                                     accepted: true});
          cell._message(prompt.seq, prompt.msg);
          break;
        }
      }
    }

    /** The worksheet has another session (it starts at seq 1): a later one means the one
     * before ended (idle, restarted, or its device went away), and its variables with it. */
    _newSession(sub, session) {
      const previous = sub.session;
      sub.session = session;
      sub.last = 0;
      const cell = sub.cells.values().next().value;  // one event for the worksheet
      if (previous && cell) cell._event("session", {session, previous});
    }

    /** What the broker says of the worksheet's session (broker/closures.py): it ended, and
     * why; or it went idle, and its device ends it after `idle_timeout` s (from the message's
     * date). One event for the worksheet. */
    _sessionNote(sub, msg, facts) {
      const cell = sub.cells.values().next().value;
      if (!cell) return;
      if (msgTypeOf(msg) === "session_closed") {
        cell._event("closed", {reason: String(msg.content.reason || "ended")});
      } else if (typeof facts.idle_timeout === "number" && isObject(msg.header)) {
        const since = Date.parse(msg.header.date);
        cell._event("idle", {since: isNaN(since) ? Date.now() : since, timeout: facts.idle_timeout});
      }
    }

    /** Run nothing in `cell`'s worksheet session, so its device's idle clock starts again:
     * under a cell id of its own, so no cell of the page shows it or loses its last run. */
    keepAlive(cell) {
      const keeper = {user: cell.user, worksheet: cell.worksheet, cellId: KEEPALIVE_CELL,
                      options: cell.options, requestId: null, generation: 0,
                      _accepted() {}, _failed() {}};
      this.evaluate(keeper, "");
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
        if (record.kind === "interact_request") {
          record.cell._interactRefused(record.msg.content.interact_id, content.error || "refused");
        }
      }
    }

    _output(msg, facts, parent) {
      const sub = this.subs.get(facts.user + "/" + facts.worksheet);
      if (!sub) return;
      if (facts.session !== sub.session) this._newSession(sub, facts.session);
      if (facts.seq <= sub.last) return;  // seen already
      sub.last = facts.seq;
      this._sessionNote(sub, msg, facts);
      const record = parent ? this.requests.get(parent) : null;
      if (record && record.kind === "execute_request") {
        if (record.cell.requestId === parent) record.cell._message(facts.seq, msg);
        return;
      }
      if (!record && parent) this._notePrompt(sub, msg, facts, parent);
      // A run of an interact, asked for by this page or by another one: every cell showing
      // that interact shows its output.
      const interactId = typeof facts.interact_id === "string" ? facts.interact_id
        : record && record.kind === "interact_request" ? record.msg.content.interact_id : null;
      if (interactId === null) return;
      for (const cell of sub.cells) {
        if (cell.cellId === String(facts.cell_id) || (record && record.cell === cell)) {
          cell._interactMessage(facts.seq, msg, parent, interactId);
        }
      }
      if (record && msgTypeOf(msg) === "interact_reply") this.requests.delete(parent);
    }
  }

  const channels = new Map();

  function channelFor(server, token) {
    const key = server + " " + (token || "");
    if (!channels.has(key)) channels.set(key, new Channel(server, token));
    return channels.get(key);
  }

  // ---- the code box's keys: Tab indents, Enter keeps the indentation ---------------------

  const INDENT = "    ";

  /** Replace the box's selection with `text` as typing would (undo keeps it, "input"
   * fires), selecting it when `select`. */
  function typeText(box, text, select) {
    const start = box.selectionStart;
    if (!document.execCommand || !document.execCommand("insertText", false, text)) {
      box.setRangeText(text, start, box.selectionEnd, "end");
      box.dispatchEvent(new Event("input", {bubbles: true}));
    }
    if (select) box.setSelectionRange(start, start + text.length);
  }

  /** Tab: four spaces at the cursor, or the selected lines one level in; Shift+Tab (`out`):
   * the lines one level out. */
  function indent(box, out) {
    const value = box.value, start = box.selectionStart, end = box.selectionEnd;
    if (!out && start === end) {
      const column = start - value.lastIndexOf("\n", start - 1) - 1;
      typeText(box, INDENT.slice(column % INDENT.length), false);
      return;
    }
    const from = value.lastIndexOf("\n", start - 1) + 1;
    const to = end > start && value[end - 1] === "\n" ? end - 1 : end;
    const lines = value.slice(from, to).split("\n");
    const moved = lines.map((line) => out ? line.replace(/^ {1,4}|^\t/, "") : INDENT + line);
    box.setSelectionRange(from, to);
    typeText(box, moved.join("\n"), start !== end);
    if (start === end) {  // Shift+Tab with no selection: the cursor stays on its text
      const cursor = Math.max(from, start - (lines[0].length - moved[0].length));
      box.setSelectionRange(cursor, cursor);
    }
  }

  /** Enter: a new line as indented as this one, a level more after a colon. */
  function newLine(box) {
    const value = box.value, start = box.selectionStart;
    const line = value.slice(value.lastIndexOf("\n", start - 1) + 1, start);
    const lead = line.match(/^[ \t]*/)[0];
    typeText(box, "\n" + lead + (/:\s*$/.test(line) ? INDENT : ""), false);
  }

  // ---- the code editor: CodeMirror 5, when the page loaded it ---------------------------
  // static/vendor/codemirror/ (lib/codemirror.js and .css, mode/{python,r,shell}/): plain
  // scripts the page loads before cellbus.js, as the worksheet page does. Without them a cell
  // keeps its plain textarea and the keys above.

  /** The CodeMirror mode of each kernel name (the built-in "python", ipykernel's "python3",
   * IRkernel's "ir", bash_kernel's "bash"); another kernel gets no highlighting. */
  const MODES = {python: "python", python3: "python", ir: "r", r: "r", bash: "shell"};

  function modeOf(kernel) {
    return MODES[String(kernel || "python").toLowerCase()] || null;
  }

  /** Put CodeMirror on `cell`'s textarea, which stays in the DOM (hidden) holding the code:
   * `cell.input.value` reads it, and a page that sets it and fires "input" sets the editor.
   * Tab and Shift+Tab indent and dedent by four spaces, Enter keeps the indentation (the
   * mode's: a level more after a colon), Shift+Enter and Ctrl+Enter evaluate, and Escape
   * then Tab leaves the editor. Returns the editor, or null without CodeMirror. */
  function attachEditor(cell) {
    const CM = window.CodeMirror;
    if (typeof CM !== "function" || typeof CM.fromTextArea !== "function") return null;
    const box = cell.input;
    const run = (shift) => () => {
      cell.evaluate();
      if (shift && cell.options.onShiftEnter) cell.options.onShiftEnter(cell);
    };
    const editor = CM.fromTextArea(box, {
      mode: modeOf(cell.options.kernel),
      indentUnit: 4, tabSize: 4, indentWithTabs: false, viewportMargin: Infinity,
      screenReaderLabel: box.getAttribute("aria-label"),
      extraKeys: {
        "Tab": (cm) => cm.execCommand(cm.somethingSelected() ? "indentMore" : "insertSoftTab"),
        "Shift-Tab": "indentLess",
        "Shift-Enter": run(true), "Ctrl-Enter": run(false), "Cmd-Enter": run(false),
      },
    });
    // On the editor's whole element, before CodeMirror sees the key: a key pressed just
    // after a click can reach CodeMirror's scroller while it hands focus to its input, and
    // an Escape lost there left the next Tab indenting (a keyboard trap).
    let escaped = false;
    editor.getWrapperElement().addEventListener("keydown", (event) => {
      if (escaped && cell._typeKey(event)) {  // Escape then M or Y: the cell's type
        escaped = false;
        return;
      }
      if (event.key === "Tab" && escaped) event.codemirrorIgnore = true;  // no keyboard trap
      escaped = event.key === "Escape";
    }, true);
    let syncing = false;
    editor.on("change", () => {
      editor.save();
      syncing = true;
      box.dispatchEvent(new Event("input", {bubbles: true}));
      syncing = false;
    });
    box.addEventListener("input", () => {
      if (!syncing && box.value !== editor.getValue()) editor.setValue(box.value);
    });
    editor.getWrapperElement().classList.add("cellbus-editor");
    return editor;
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
      this.token = o.token ? String(o.token) : null;
      this.channel = channelFor(this.server, this.token);
      this.requestId = null;   // the request whose output this cell shows
      this.generation = 0;     // bumped by every evaluation; late callbacks of older ones stop
      this.status = "idle";
      this.busy = false;
      this.sawOutput = false;
      this.noOutputTimer = null;
      this.interacts = new Map();    // interact_id -> its InteractView on screen
      this.runs = new Map();         // an interact run's msg_id -> {fold}: its output
      this.type = "code";            // or "markdown": rendered in place, never sent anywhere
      this._build(element, o);
      allCells.add(this);
      this.channel.register(this);
      if (o.type === "markdown") {
        this.setType("markdown");
        if (this.input.value) this.render();
      } else if (o.autoeval) this.evaluate();
      else if (o.restore) this._restore();
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
      this.count = el("span", "cellbus-count");  // the session's execution counter, [n]
      this.count.hidden = true;
      this.count.title = "execution number in the session";
      bar.append(this.count, this.button, this.stopButton, this.working, this.statusText);
      this.bar = bar;
      this.notice = el("div", "cellbus-notice");
      this.notice.setAttribute("role", "alert");
      this.notice.hidden = true;
      this.outputElement = el("div", "cellbus-output");
      this.outputElement.setAttribute("aria-live", "polite");
      this.view = new OutputView(this.outputElement, this);
      this.rendered = el("div", "cellbus-markdown");  // a Markdown cell, rendered
      this.rendered.hidden = true;
      this.rendered.tabIndex = 0;
      this.rendered.title = "double-click (or Enter) to edit";
      this.rendered.addEventListener("dblclick", () => this.edit());
      this.rendered.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" || event.shiftKey || event.ctrlKey || event.metaKey) return;
        event.preventDefault();
        this.edit();
      });
      element.append(this.input, this.rendered, bar, this.notice, this.outputElement);
      this.editor = attachEditor(this);  // null: the plain textarea
      this._fit();
      this._setStatus("idle");
    }

    /** As tall as the code (2 to 30 lines), so a cell needs no scrolling of its own. */
    _fit() {
      if (this.editor) return;  // CodeMirror grows with its code, to 30 lines (cellbus.css)
      const input = this.input;
      input.rows = Math.min(Math.max(input.value.split("\n").length, 2), 30);
      input.style.height = "";
      if (!input.scrollHeight) return;  // not laid out (hidden): rows must do
      const frame = input.offsetHeight - input.clientHeight;  // borders and a scrollbar
      const lineHeight = parseFloat(getComputedStyle(input).lineHeight) || 20;
      input.style.height = Math.min(input.scrollHeight + frame, 30 * lineHeight + 24) + "px";
    }

    _key(event) {
      if (event.isComposing) return;
      const tabLeaves = this.tabLeaves;
      this.tabLeaves = event.key === "Escape";  // then Tab leaves the box: no keyboard trap
      if (tabLeaves && this._typeKey(event)) return;
      if (event.key === "Tab" && !tabLeaves && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        indent(this.input, event.shiftKey);
      } else if (event.key === "Enter" && (event.shiftKey || event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.evaluate();
        if (event.shiftKey && this.options.onShiftEnter) this.options.onShiftEnter(this);
      } else if (event.key === "Enter" && !event.altKey) {
        event.preventDefault();
        newLine(this.input);
      }
    }

    /** Run later evaluations in `kernel`, and highlight the code in its language. */
    setKernel(kernel) {
      this.options.kernel = kernel;
      if (this.editor && this.type === "code") this.editor.setOption("mode", modeOf(kernel));
    }

    /** Make this a "markdown" cell (its text is rendered here, never run) or a "code" one;
     * sends cellbus:type. A Markdown cell's output and run controls are hidden. */
    setType(type) {
      type = type === "markdown" ? "markdown" : "code";
      if (type === this.type) return;
      this.type = type;
      this.element.dataset.type = type;
      const markdown = type === "markdown";
      const what = markdown ? "Markdown" : "code";
      this.input.setAttribute("aria-label", what + " of cell " + this.cellId);
      this.input.placeholder = markdown ? "Markdown; Shift+Enter renders it"
        : this.options.placeholder;
      if (this.editor) {
        this.editor.setOption("mode", markdown ? null : modeOf(this.options.kernel));
        this.editor.setOption("placeholder", this.input.placeholder);
        this.editor.setOption("screenReaderLabel", this.input.getAttribute("aria-label"));
      }
      if (!markdown && !this.rendered.hidden) this.edit();
      this._event("type", {type: type});
    }

    /** Escape then M makes the cell Markdown, Escape then Y code, as in Jupyter; true if
     * `event` (the key after an Escape) was one of them. */
    _typeKey(event) {
      const key = typeof event.key === "string" ? event.key.toLowerCase() : "";
      if ((key !== "m" && key !== "y") || event.ctrlKey || event.metaKey || event.altKey) {
        return false;
      }
      event.preventDefault();
      this.setType(key === "m" ? "markdown" : "code");
      return true;
    }

    /** Show a Markdown cell's text rendered, in place of its editor; sends cellbus:rendered. */
    render() {
      this._showEditor(false);
      this.rendered.hidden = false;
      showMarkdown(this.rendered, this.input.value);
      this._event("rendered", {});
    }

    /** Edit a rendered Markdown cell again. */
    edit() {
      this.rendered.hidden = true;
      this._showEditor(true);
      this.focus();
    }

    _showEditor(show) {
      const box = this.editor ? this.editor.getWrapperElement() : this.input;
      box.style.display = show ? "" : "none";
      if (!show) return;
      if (this.editor) this.editor.refresh();
      else this._fit();
    }

    focus() {
      if (this.editor) this.editor.focus();
      else this.input.focus();
    }

    /** Clear the output on the page (the store keeps it: a reload shows it again). */
    clearOutput() {
      this.view.clear();
      this.outputElement.classList.remove("cellbus-stale");
      this._hideNotice();
      if (!this.busy) {
        this.count.hidden = true;
        this._setStatus("idle");
      }
    }

    /** Take the cell off the page: its element is emptied and it hears nothing more. */
    destroy() {
      this.generation++;
      if (this.requestId) this.channel.forget(this.requestId);
      this.requestId = null;
      this._setBusy(false);
      clearTimeout(this.noOutputTimer);
      this.channel.unregister(this);
      allCells.delete(this);
      this.element.textContent = "";
      this.element.classList.remove("cellbus-cell");
    }

    /** This cell's URL for `action` on its gateway, and fetch() with its token. */
    _url(action) {
      return this.channel.url(this, action);
    }

    _fetch(url, init) {
      return this.channel.fetch(url, init);
    }

    /** Evaluate the code in the input; the old output stays, marked stale, until new comes. */
    evaluate() {
      if (this.type === "markdown") {
        this.render();
        return;
      }
      const code = this.input.value;
      const gen = ++this.generation;
      if (this.requestId) this.channel.forget(this.requestId);
      this.requestId = null;
      this.fold = new Fold();
      this.runs.clear();
      this.interacts.clear();
      this.sawOutput = false;
      this.started = performance.now();
      this.outputElement.classList.toggle("cellbus-stale", !this.view.empty);
      showUsage(this, null);
      this._hideNotice();
      this._setBusy(true);
      this._setStatus("sending");
      clearTimeout(this.noOutputTimer);
      if (this.options.noOutputTimeout > 0) {
        this.noOutputTimer = setTimeout(() => this._noOutput(gen), this.options.noOutputTimeout);
      }
      this.requestId = this.channel.evaluate(this, code);
    }

    /** Show the run `parent`, which this page did not start, from its prompt on (see
     * Channel._adoptPrompts); false if the cell is busy with a run of its own. */
    adoptRun(parent) {
      if (this.busy) return false;
      ++this.generation;
      this.requestId = parent;
      this.fold = new Fold();
      this.runs.clear();
      this.interacts.clear();
      this.sawOutput = false;
      this.started = performance.now();
      this._setBusy(true);
      this._setStatus("running");
      return true;
    }

    interrupt() {
      if (!this.busy) return;
      this.channel.interrupt(this);
    }

    // -- from the channel (WebSocket) ----------------------------------------------------------

    // -- from the transport (this.channel: a WebSocket, or HTTP behind it) -------------------

    /** The gateway took request `msgId` (over HTTP the cell learns its msg_id only here). */
    _accepted(msgId, status) {
      if (this.requestId === null && this.busy && this.status === "sending") this.requestId = msgId;
      if (msgId === this.requestId && this.status === "sending") {
        this._setStatus(status === "working" ? "running" : "queued");
      }
    }

    _running() {
      if (this.busy && this.status !== "running") this._setStatus("running");
    }

    _failed(text) {
      this._finish("failed", text);
    }

    _refused(msgId, error) {
      if (msgId !== this.requestId) return;
      this._finish("failed", "The server refused this evaluation: " + error);
    }

    _message(seq, msg) {
      const type = msg.msg_type;
      if (!this.busy) return;
      if (type === "execute_input" || (type === "status" && msg.content.execution_state === "busy")) {
        this._running();
      }
      if (type === "execute_input" && Number.isInteger(msg.content.execution_count)) {
        this._setCount(String(msg.content.execution_count));
        this._event("count", {count: msg.content.execution_count});
      }
      if (this.fold.apply(seq, msg)) this._show(this.fold.view());
      if (type === "execute_reply") {
        this.replyStatus = msg.content.status;
        showUsage(this, msg.metadata && msg.metadata.usage);
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

    /** After a reload: show the cell's last request as the store has it (code, output,
     * status), and one that is still queued or running as it goes on, with its Stop button.
     * An evaluation started meanwhile wins. */
    async _restore() {
      const gen = this.generation;
      const doc = await this.channel.document(this, 0);
      if (!doc || !doc.request || gen !== this.generation) return;
      if (!this.input.value && typeof doc.input === "string") {
        this.input.value = doc.input;
        this._fit();
      }
      if (isObject(doc.output) && Object.keys(doc.output).length) {
        this.fold = new StoredBlocks(doc.output);  // an interact in it runs again from here
        this.sawOutput = true;
        this._show(doc.output);
      }
      if (doc.status === "needs_work" || doc.status === "working") {
        this.requestId = doc.request;
        this._setBusy(true);
        this._setStatus(doc.status === "working" ? "running" : "queued");
        this.channel.follow(this, doc.request, doc);
      } else if (doc.status in STATUS_TEXT) {
        this._setStatus(doc.status);
      }
    }

    /** A safety net after a reconnect: if the request has finished but its end never came
     * over the socket (its session was replaced meanwhile, say), show the stored output. */
    async _resync() {
      const msgId = this.requestId;
      if (!this.busy || !msgId) return;
      const doc = await this.channel.document(this, 0);
      if (!doc || !this.busy || this.requestId !== msgId || doc.request !== msgId) return;
      if (doc.status !== "done" && doc.status !== "error") return;
      this._show(doc.output);
      this._finish(doc.status);
    }

    /** Answer the prompt the cell's run waits on; null when sent, else what went wrong. */
    async answerPrompt(value, prompt) {
      try {
        const r = await this._fetch(this._url("input"), {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(Number.isInteger(prompt) ? {value: value, prompt: prompt}
                               : {value: value}),
        });
        if (r.status === 202) return null;
        const body = await r.json().catch(() => ({}));
        // 409: answered already (maybe by an earlier try of ours whose reply was lost),
        // stale, or the run ended; the output shows which once it updates.
        if (r.status === 409) {
          return "This prompt no longer waits for an answer: it was answered (an earlier "
            + "try of yours may have arrived) or its run ended.";
        }
        return "Not sent: " + (body.error || "HTTP " + r.status);
      } catch (e) {
        // A network error says nothing of whether the POST arrived.
        return "The connection failed; your answer may have arrived. If this prompt stays "
          + "open, press Enter to send it again.";
      }
    }


    /** Start the next interact this cell shows at `values` ({name: value}, as Share
     * stored them) and run its function with them; null forgets a preset not yet used. */
    presetInteract(values) {
      this.preset = isObject(values) ? values : null;
    }

    _takePreset() {
      const preset = this.preset || null;
      this.preset = null;
      return preset;
    }

    /** The values of the first interact in the cell's output ({name: value}), or null. */
    interactValues() {
      const node = this.outputElement.querySelector(".cellbus-interact");
      const view = node ? this.interacts.get(node.dataset.interactId) : null;
      return view ? view.shareable() : null;
    }

    _registerInteract(view) {
      this.interacts.set(view.id, view);
    }

    _sendInteract(view, values) {
      this.interacts.set(view.id, view);
      const content = {interact_id: view.id, values: values, state: nextState(view.id)};
      view.sent(content.state);
      this.channel.interact(this, content);
    }

    _interactRefused(interactId, error) {
      const view = this.interacts.get(interactId);
      if (view) view.refused(error);
    }

    _interactFailed(interactId, text) {
      const view = this.interacts.get(interactId);
      if (view) view.failed(text);
    }

    _interactFinished(interactId, state) {
      const view = this.interacts.get(interactId);
      if (view) view.finished(state);
    }

    /** One message of a run of interact `interactId` (over the WebSocket). The run folds into
     * a fresh Fold, which replaces the interact's output once the run shows something (or
     * ends showing nothing): a request skipped as stale (`ignored`) changes nothing. */
    _interactMessage(seq, msg, parent, interactId) {
      if (!this.fold || !this.fold.hasInteract(interactId)) return;
      const type = msgTypeOf(msg);
      const key = parent || "interact:" + interactId;
      let run = this.runs.get(key);
      if (!run) {
        if (type === "status" && msg.content.execution_state === "idle") return;  // ended
        run = {fold: new Fold()};
        this.runs.set(key, run);
      }
      const changed = run.fold.apply(seq, msg);
      let show = changed;
      if (type === "interact_reply") {
        this.runs.delete(key);
        const view = this.interacts.get(interactId);
        if (view) view.finished(msg.content.state);
        if (msg.content.ignored === true) return;
        show = true;
      }
      if (!show) return;
      this.fold.replaceInteractOutput(interactId, seq, run.fold);  // again: bumps its seq
      this._show(this.fold.view());
    }
    // -- what the person sees ------------------------------------------------------------------

    _show(blocks) {
      if (!this.sawOutput && Object.keys(blocks).length) {
        this.sawOutput = true;
        this.outputElement.classList.remove("cellbus-stale");
        clearTimeout(this.noOutputTimer);
        this._hideNotice();
      }
      if (this.sawOutput) this._drawSoon(blocks);
    }

    /** Draw `blocks` at the next animation frame: a flood of output messages costs one
     * drawing per frame, and the status and Stop button (changed at once) stay current. */
    _drawSoon(blocks) {
      const first = this.pending === undefined || this.pending === null;
      this.pending = {blocks: blocks, generation: this.generation};
      if (!first) return;
      requestAnimationFrame(() => this._drawNow());
    }

    _drawNow() {
      const pending = this.pending;
      this.pending = null;
      if (pending && pending.generation === this.generation) this.view.update(pending.blocks);
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

    _setCount(text) {
      this.count.textContent = "[" + text + "]";
      this.count.hidden = false;
    }

    _setBusy(busy) {
      if (busy) this._setCount("*");
      else if (this.count.textContent === "[*]") this.count.hidden = true;  // no number came
      this.busy = busy;
      this.working.hidden = !busy;
      this.stopButton.hidden = !busy;
      this.element.classList.toggle("cellbus-busy", busy);
    }

    /** Tell the page: a "cellbus:NAME" event on the cell's element (it bubbles). */
    _event(name, detail) {
      this.element.dispatchEvent(new CustomEvent("cellbus:" + name, {
        bubbles: true, detail: Object.assign({cell: this}, detail)}));
    }

    _setStatus(status) {
      const changed = status !== this.status;
      this.status = status;
      if (changed) this._event("status", {status: status, busy: this.busy});
      this.element.dataset.status = status;
      let text = status in STATUS_TEXT ? STATUS_TEXT[status] : status;
      if (!this.busy && this.started !== undefined && status !== "idle") {
        const ms = performance.now() - this.started;
        text += " (" + (ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s") + ")";
      }
      this.statusText.textContent = text;
    }

    _finish(status, message) {
      this._drawNow();  // "done" means its output is on screen
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

  // ---- usage and permalinks (issue 24): self-contained helpers ---------------------------

  /** Show, discreetly under `cell`, what its run used (`usage`: its execute_reply's
   * metadata.usage, or /update's "usage"); anything else removes the line. */
  function showUsage(cell, usage) {
    let line = cell.element.querySelector(":scope > .cellbus-usage");
    if (!isObject(usage)) {
      if (line) line.remove();
      return;
    }
    if (!line) {
      line = el("div", "cellbus-usage");
      line.style.cssText = "color: var(--cellbus-muted, #6e7781); font-size: 0.75em; margin-top: 0.2em";
      cell.element.appendChild(line);
    }
    const n = (x) => (typeof x === "number" && isFinite(x) && x > 0 ? x : 0);
    const time = (x) => (n(x) < 1 ? Math.round(n(x) * 1000) + " ms" : n(x).toFixed(2) + " s");
    line.textContent = "CPU " + time(usage.cpu_seconds) + " · wall " + time(usage.wall_seconds)
      + " · peak memory " + sizeText(n(usage.peak_memory_bytes)) + " · output "
      + sizeText(n(usage.output_bytes)) + " · processes " + n(usage.processes);
  }

  /** Code shared by link: `?q=ID` (a stored permalink) or `?z=...` (zlib + base64url code in
   * the URL, as SageMathCell's); null if the query names none. Rejects with an Error saying
   * why a link cannot be opened. */
  async function sharedCode(query, server) {
    const link = await sharedLink(query, server);
    return link && link.code;
  }

  /** What a link shares: {code, interact: the interact's values by name, or null} (see
   * sharedCode), or null if the query names none. */
  async function sharedLink(query, server) {
    const base = server || DEFAULT_SERVER;
    if (query.get("q")) {
      const response = await fetch(base + "permalink/" + encodeURIComponent(query.get("q")),
                                   {credentials: "same-origin"});
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || "this permalink cannot be opened");
      return {code: body.code, interact: isObject(body.interact) ? body.interact : null};
    }
    if (!query.get("z")) return null;
    const b64 = query.get("z").replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return {code: await new Response(stream).text(), interact: null};
  }

  /** Store `code` (and `interact`, its interact's values by name: Cell.interactValues) as a
   * permalink, copy its URL to the clipboard where the browser lets us, and return the URL. */
  async function share(code, server, interact) {
    const base = server || DEFAULT_SERVER;
    const response = await fetch(base + "permalink", {
      method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({code: code, interact: isObject(interact) ? interact : null}),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || "the permalink could not be made");
    const url = new URL(body.url, base).href;
    try { await navigator.clipboard.writeText(url); } catch (e) { /* not allowed: shown only */ }
    return url;
  }

  // ---- Jupyter notebooks (.ipynb): what a worksheet's layout takes of one -------------------

  /** The code and Markdown cells of a Jupyter notebook (`text`: its JSON, nbformat 4) as a
   * worksheet layout, [{id, type, code}] numbered from 1; outputs and raw cells are not
   * taken. Throws an Error saying why for anything else. */
  function notebookLayout(text) {
    let nb;
    try { nb = JSON.parse(text); } catch (e) { nb = null; }
    if (!isObject(nb) || nb.nbformat !== 4 || !Array.isArray(nb.cells)) {
      throw new Error("not a Jupyter notebook of format 4 (an .ipynb file, JSON with "
                      + "\"nbformat\": 4 and its \"cells\")");
    }
    const cells = [];
    for (const cell of nb.cells) {
      if (!isObject(cell) || (cell.cell_type !== "code" && cell.cell_type !== "markdown")) continue;
      const source = Array.isArray(cell.source) ? cell.source.join("") : cell.source;
      if (typeof source !== "string") throw new Error("a cell of this notebook has no source text");
      cells.push({id: String(cells.length + 1), type: cell.cell_type, code: source});
    }
    return cells;
  }

  // ---- public API ---------------------------------------------------------------------------

  /** Turn `element` into a cell; see DEFAULTS above for the options. Returns the cell. */
  function makeCell(element, options) {
    if (typeof element === "string") element = document.querySelector(element);
    if (!element) throw new Error("cellbus.makeCell: no such element");
    return new Cell(element, options);
  }

  // ---- SessionBar: the worksheet's session, what it runs, and its Restart button ----------

  const KERNELS = {python: "Python 3", python3: "Python 3", r: "R", bash: "Bash"};
  const SESSION_REPLACED = "a new session: the last one ended (idle too long, restarted, or "
    + "its machine went away), and its variables with it";
  /** The cell id of keep-alive runs (Channel.keepAlive): no cell of a page has it. */
  const KEEPALIVE_CELL = "keepalive";
  /** A session about to end idle is said this long before (at most half its timeout). */
  const WARN_BEFORE = 120000;
  /** ms past the idle timeout after which a session not said closed gets no countdown. */
  const OVERDUE = 30000;
  /** The device's words for why it ended a session, as the page says them. */
  const GONE_WHY = {
    "idle timeout": "idle too long; its variables were cleared (the next evaluation starts "
      + "a new session)",
    "shutdown requested": "restarted: the next evaluation starts a new session, without "
      + "the old variables",
    "device lost": "its machine stopped answering, so its variables are gone (the next "
      + "evaluation starts a new session)",
  };
  const SESSION_TEXT = {
    none: "no session yet: the first evaluation starts one",
    starting: "starting…", busy: "busy", idle: "idle",
  };

  /** Above a worksheet's cells: the kernel its session runs, the session's state (none,
   * starting, busy, idle, gone: why), and Restart (a fresh session; variables go). A
   * worker that ended on its own (the device's --idle-timeout, say) is said from the
   * broker's session_closed note (gone: why), and warned of before from the idle timeout
   * the broker puts on each idle status (with Keep); a worker placed again under the same
   * session shows when the next run starts it (its execution number starts again at 1). */
  class SessionBar {
    constructor(kernel, cells) {
      this.cells = cells;
      this.known = false;     // a session ran something since the page loaded or restarted it
      this.why = null;        // gone: why, until the next session runs
      this.notice = null;     // a new session replaced the last: said until the next run
      this.rested = false;    // no cell ran since the notice came
      this.restarted = false; // the next new session is the Restart's, no news
      this.lastCount = null;  // the last execution number seen
      this.idleUntil = null;  // when the device ends the idle session (ms), if it said
      this.warnFrom = null;   // when the page starts to warn of it (ms)
      this.ticker = null;
      const name = typeof kernel === "string" && kernel ? kernel : "python";
      this.node = el("div", "cellbus-session");
      this.node.append(el("span", "cellbus-kernel", KERNELS[name.toLowerCase()] || name));
      this.state = el("span", "cellbus-session-state");
      this.state.setAttribute("role", "status");
      this.restartButton = el("button", "cellbus-restart", "Restart");
      this.restartButton.type = "button";
      this.restartButton.title = "a fresh session: the variables go";
      this.restartButton.addEventListener("click", () => this.restart());
      this.keepButton = el("button", "cellbus-keep", "Keep");
      this.keepButton.type = "button";
      this.keepButton.title = "keep the session and its variables: it runs nothing";
      this.keepButton.hidden = true;
      this.keepButton.addEventListener("click", () => this.keep());
      this.node.append(this.state, this.keepButton, this.restartButton);
      this.show();
    }

    /** The session ended on its device for `reason` (a session_closed note): gone, and
     * why, until a session runs again. */
    closed(reason) {
      this.idleUntil = null;
      if (this.restarted) return;  // the Restart's own end: said already
      this.known = false;
      this.why = GONE_WHY[reason] || reason;
      this.show();
    }

    /** The session went idle at `since` (ms) and its device ends it after `timeout` s
     * idle: a warning shows shortly before, with Keep. */
    idled(since, timeout) {
      this.idleUntil = since + timeout * 1000;
      this.warnFrom = this.idleUntil - Math.min(WARN_BEFORE, timeout * 500);
      this._tick();
    }

    _tick() {
      clearTimeout(this.ticker);
      this.ticker = null;
      const now = Date.now();
      // Long past its end and not closed (an interact's longer timeout, clocks apart, an old
      // idle status replayed): no countdown the page cannot keep honest.
      if (this.idleUntil !== null && now > this.idleUntil + OVERDUE) this.idleUntil = null;
      this.show();
      if (this.idleUntil === null) return;
      this.ticker = setTimeout(() => this._tick(), now < this.warnFrom ? this.warnFrom - now : 1000);
    }

    /** A cell of the page sent a run: the session is no longer idle. (Not on its busy status:
     * the idle note comes while its cell still shows the run it ends.) */
    sent() {
      this.idleUntil = null;
      this.show();
    }

    /** Keep the idle session: an evaluation of nothing starts its idle clock again. */
    keep() {
      const cell = this.cells[0];
      if (!cell) return;
      this.idleUntil = null;
      cell.channel.keepAlive(cell);
      this.show();
    }

    /** "idle: variables are cleared in …" once the warning is due, else null. */
    _warning() {
      if (this.idleUntil === null || Date.now() < this.warnFrom) return null;
      const s = Math.max(0, Math.round((this.idleUntil - Date.now()) / 1000));
      if (s === 0) return "idle: the variables are being cleared (idle past the timeout)";
      return "idle: variables are cleared in " + (s < 90 ? s + " s" : Math.round(s / 60) + " min")
        + " unless the session is used (Keep keeps it)";
    }

    restart() {
      const cell = this.cells[0];
      if (!cell) return;
      cell.channel.restart(cell);
      this.known = false;
      this.notice = null;
      this.restarted = true;
      this.lastCount = null;
      this.why = "restarted: the next evaluation starts a new session, without the old variables";
      this.show();
    }

    /** An execution number `count`: 1 after others is a new worker, with none of the old
     * variables, though the session's name stayed (the device ended an idle worker, or
     * went away, and the broker placed the session again). */
    counted(count) {
      if (count === 1 && this.lastCount !== null) this.replaced();
      this.lastCount = count;
    }

    /** The worksheet's session was replaced by a new one (see Channel._newSession). */
    replaced() {
      if (this.restarted) return;
      this.notice = SESSION_REPLACED;
      this.rested = false;
      this.show();
    }

    show() {
      const busy = this.cells.some((c) => c.busy);
      const running = this.cells.some((c) => c.busy && c.status === "running");
      if (running) {
        this.known = true;
        this.why = null;
        if (this.rested) this.notice = null;
      }
      if (!busy) this.rested = this.notice !== null;
      if (!busy && this.known) this.restarted = false;  // the restarted session has run
      let state;
      if (running) state = "busy";
      else if (busy) state = this.known ? "busy" : "starting";
      else if (this.why) state = "gone";
      else if (this.known || this.cells.some((c) => c.status in FINISHED)) state = "idle";
      else state = "none";
      this.node.dataset.state = state;
      const warning = state === "idle" ? this._warning() : null;
      this.keepButton.hidden = warning === null;
      this.node.classList.toggle("cellbus-session-warning", warning !== null);
      const text = state === "gone" ? "gone: " + this.why : warning || SESSION_TEXT[state];
      this.state.textContent = this.notice ? text + " · " + this.notice : text;
      this.node.classList.toggle("cellbus-session-news", this.notice !== null);
    }
  }

  const FINISHED = {done: true, error: true, aborted: true};
  /** Where a run can end: FINISHED, or not run at all (refused, lost, evaluated elsewhere,
   * its cell deleted). */
  const ENDED = Object.assign({failed: true, superseded: true, removed: true}, FINISHED);

  /** Evaluate `cell` and resolve to how its run ended (a status of ENDED). */
  function runToEnd(cell) {
    return new Promise((resolve) => {
      const seen = (event) => {
        if (event.detail.cell !== cell || event.detail.busy || !(event.detail.status in ENDED)) return;
        cell.element.removeEventListener("cellbus:status", seen);
        resolve(event.detail.status);
      };
      cell.element.addEventListener("cellbus:status", seen);
      cell.evaluate();
    });
  }

  /** Cells that share one worksheet (one session), one after the other in `element`;
   * Shift+Enter evaluates and moves to the next cell, adding one after the last. Each cell
   * has a Code/Markdown selector and buttons to move it up or down, clear its output and
   * delete it. `codes`: the cells' code, each a string or {id, type, code} (as `layout()`
   * gives, to save); `onChange(sheet)` after cells were added, moved, deleted, retyped or
   * rendered. Ctrl+F9 runs all (runAll). Returns {cells, add, move, remove, layout, runAll}. */
  function makeWorksheet(element, options) {
    const o = Object.assign({cells: 3, codes: []}, options || {});
    if (!o.worksheet) throw new Error("cellbus.makeWorksheet: a worksheet name is needed");
    const cells = [];
    const list = el("div", "cellbus-worksheet");
    element.appendChild(list);
    const session = new SessionBar(o.kernel, cells);
    list.appendChild(session.node);
    list.addEventListener("cellbus:status", (event) => {
      if (event.detail.status === "sending") session.sent();
      else session.show();
    });
    list.addEventListener("cellbus:session", () => session.replaced());
    list.addEventListener("cellbus:closed", (event) => session.closed(event.detail.reason));
    list.addEventListener("cellbus:idle", (event) => session.idled(event.detail.since,
                                                                   event.detail.timeout));
    list.addEventListener("cellbus:count", (event) => session.counted(event.detail.count));
    list.addEventListener("cellbus:type", (event) => {
      const select = event.target.querySelector(".cellbus-type");
      if (select) select.value = event.detail.type;
      changed();
    });
    list.addEventListener("cellbus:rendered", () => changed());
    let nextId = 1;
    let loading = true;
    const changed = () => {
      if (!loading && o.onChange) o.onChange(sheet);
    };

    /** A new cell with `code` (a string or {id, code}) at `index` (default: last). */
    function add(code, index) {
      const entry = isObject(code) ? code : {code: code};
      const id = entry.id !== undefined ? String(entry.id) : String(nextId);
      nextId = Math.max(nextId, (parseInt(id, 10) || 0) + 1);
      const at = Number.isInteger(index) ? Math.max(0, Math.min(index, cells.length)) : cells.length;
      const box = el("div");
      list.insertBefore(box, at < cells.length ? cells[at].element : null);
      const cell = makeCell(box, Object.assign({}, o, {
        code: typeof entry.code === "string" ? entry.code : "", cellId: id, autoeval: false,
        type: entry.type === "markdown" ? "markdown" : "code",
        restore: loading && o.restore !== false,  // a new cell has no past to show
        onShiftEnter: (c) => {
          const next = cells.indexOf(c) + 1;
          (cells[next] || add("")).focus();
        },
      }));
      cells.splice(at, 0, cell);
      cell.bar.appendChild(tools(cell));
      if (o.onAdd) o.onAdd(cell);
      changed();
      return cell;
    }

    function tools(cell) {
      const box = el("span", "cellbus-tools");
      const type = el("select", "cellbus-type");
      type.title = "Code runs in the session; Markdown is rendered here (Escape then M or Y)";
      type.setAttribute("aria-label", "Cell type (cell " + cell.cellId + ")");
      for (const [value, text] of [["code", "Code"], ["markdown", "Markdown"]]) {
        const option = el("option", null, text);
        option.value = value;
        type.appendChild(option);
      }
      type.value = cell.type;
      type.addEventListener("change", () => cell.setType(type.value));
      box.appendChild(type);
      const button = (text, label, action) => {
        const b = el("button", "cellbus-tool", text);
        b.type = "button";
        b.title = label;
        b.setAttribute("aria-label", label + " (cell " + cell.cellId + ")");
        b.addEventListener("click", action);
        box.appendChild(b);
      };
      button("↑", "Move up", () => move(cell, -1));
      button("↓", "Move down", () => move(cell, 1));
      button("Clear", "Clear output", () => cell.clearOutput());
      button("✕", "Delete cell", () => remove(cell));
      return box;
    }

    /** Move `cell` `by` places (-1: up). */
    function move(cell, by) {
      const from = cells.indexOf(cell), to = from + by;
      if (from < 0 || to < 0 || to >= cells.length) return;
      cells.splice(from, 1);
      cells.splice(to, 0, cell);
      list.insertBefore(cell.element, to + 1 < cells.length ? cells[to + 1].element : null);
      cell.focus();
      changed();
    }

    function remove(cell) {
      const at = cells.indexOf(cell);
      if (at < 0) return;
      cells.splice(at, 1);
      if (cell.busy) cell._event("status", {status: "removed", busy: false});  // for runAll
      cell.destroy();
      cell.element.remove();
      if (cells.length) cells[Math.min(at, cells.length - 1)].focus();
      changed();
    }

    /** What to save to make the same worksheet again: [{id, type, code}] in order (type:
     * "code" or "markdown"). */
    function layout() {
      return cells.map((c) => ({id: c.cellId, type: c.type, code: c.input.value}));
    }

    /** Run All, stopping on error (as Jupyter's): the code cells top to bottom, each once the
     * one before ended, and the Markdown ones rendered; empty code cells are passed over.
     * Resolves to the cell whose run did not end "done" (the rest did not run), or null, and
     * says so in a cellbus:ranall event ({stopped: that cell or null}). While one runs, another
     * is the same one. */
    let allRun = null;
    function runAll() {
      if (!allRun) allRun = runEach().finally(() => { allRun = null; });
      return allRun;
    }
    async function runEach() {
      let stopped = null;
      for (const cell of cells.slice()) {
        if (!cells.includes(cell)) continue;  // deleted meanwhile
        if (cell.type === "markdown") {
          if (cell.input.value.trim()) cell.render();
        } else if (cell.input.value.trim() && await runToEnd(cell) !== "done") {
          stopped = cell;
          break;
        }
      }
      list.dispatchEvent(new CustomEvent("cellbus:ranall", {bubbles: true, detail: {stopped: stopped}}));
      return stopped;
    }
    list.addEventListener("keydown", (event) => {
      if (event.key !== "F9" || !(event.ctrlKey || event.metaKey)) return;
      event.preventDefault();
      runAll();
    });

    const sheet = {cells: cells, add: add, move: move, remove: remove, layout: layout,
                   runAll: runAll, options: o};
    for (let i = 0; i < Math.max(o.cells, o.codes.length); i++) add(o.codes[i]);
    loading = false;
    return sheet;
  }

  injectStylesheet();
  window.cellbus = {makeCell: makeCell, makeWorksheet: makeWorksheet, renderers: renderers,
                    Fold: Fold, share: share, sharedCode: sharedCode, sharedLink: sharedLink,
                    notebookLayout: notebookLayout, version: "0.1.0"};
})();
