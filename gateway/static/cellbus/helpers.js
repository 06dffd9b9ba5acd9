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
    placeholder: null,        // the empty code box's hint; null: its kernel's language's
                              // ("Shell code; Shift+Enter evaluates"), as codeHint says
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

  function newId() {  // randomUUID needs a secure context; getRandomValues works over http too
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Hide (or show) `node`; one hidden while it holds the focus hands it to `heir` first: a
   * button that hides itself once pressed (Stop, Keep) left the focus on the page's body,
   * from where a keyboard user's next Tab started again at the top of the page. */
  function setHidden(node, hidden, heir) {
    if (hidden && !node.hidden && node.contains(document.activeElement)) heir.focus();
    node.hidden = hidden;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Resolves once the browser is online (at once if it is): a request tried offline
   * fails, and Chromium logs each such failure as a console error. */
  function whenOnline() {
    if (navigator.onLine !== false) return Promise.resolve();
    return new Promise((resolve) => window.addEventListener("online", resolve, {once: true}));
  }

  /** `text` without its escapes: CSI (colours) and OSC 8 (a hyperlink's start and end, its
   * text kept). */
  function stripAnsi(text) {
    return text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b\]8;[^\x07\x1b]*(?:\x07|\x1b\\)/g, "");
  }

  // ANSI colours (a traceback of a Jupyter kernel, a coloured print) become coloured spans
  // by ansi_up, a classic script from npm (pinned in package.json) that the gateway serves
  // as static/vendor/ansi_up.js; loaded the first time some output has an escape, shown
  // without its colours until then (or if it cannot load). OSC 8 hyperlinks become links
  // (ansiLink).
  const ANSI_ESCAPE = /\x1b\[[0-9;?]*[A-Za-z]|\x1b\]8;/;
  // Output is the cell's to write: an OSC 8 link opens in a new tab, with no opener (the
  // page it opens cannot navigate the worksheet) and no referrer (the worksheet's URL), and
  // only to the web or mail: a javascript: or data: URL, or any other, shows its text only.
  const ANSI_LINK = /^(?:https?:\/\/|mailto:)/i;
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
      return AnsiUp ? newConverter(AnsiUp) : null;
    });
  }

  /** A converter of the loaded ansi_up class `AnsiUp`, in no colour yet. */
  function newConverter(AnsiUp) {
    const converter = new AnsiUp();
    converter.use_classes = true;  // colours from cellbus.css, readable on its background
    converter.process_hyperlink = (packet) => ansiLink(converter, packet);
    return converter;
  }

  /** ansi_up's process_hyperlink, for an OSC 8 link (`packet.url`, `packet.text`): only
   * ANSI_LINK's URLs become links, opened in a new tab (ansi_up's own took any URL whose
   * scheme its allowlist object has, inherited keys such as "constructor:" included). */
  function ansiLink(converter, packet) {
    const text = converter.escape_txt_for_html(packet.text);
    if (!ANSI_LINK.test(packet.url)) return text;
    return '<a href="' + converter.escape_txt_for_html(packet.url)
      + '" target="_blank" rel="noopener noreferrer">' + text + "</a>";
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
  // objects, forms and their controls, style sheets, and <base>, <meta> and <link>; and a
  // label's `for`, with which a click on its text clicked the page's own control of that id
  // (Share, Run all: `<label for="share">` in another user's shared code's output).
  const MARKDOWN_PURIFY = {
    USE_PROFILES: {html: true},
    FORBID_TAGS: ["style", "form", "input", "button", "select", "textarea", "option", "iframe",
                  "frame", "frameset", "object", "embed", "link", "meta", "base", "dialog"],
    FORBID_ATTR: ["style", "action", "formaction", "ping", "srcset", "for"],
    RETURN_DOM_FRAGMENT: true,
  };

  /** Show Markdown `source` in `node`: as plain text at once (and for good if marked or
   * DOMPurify cannot load), then as sanitized HTML whose links open in a new tab, its math
   * rendered by KaTeX once that HTML is sanitized (math.js). */
  function showMarkdown(node, source) {
    node.textContent = source;
    const {text, math} = splitMath(source);
    return Promise.all([vendorScript("vendor/marked/marked.umd.js", "marked"),
                        vendorScript("vendor/dompurify/purify.min.js", "DOMPurify"),
                        math.length ? katexScript() : null])
      .then(([marked, purify, katex]) => {
        if (!marked || !purify || !purify.isSupported) return;
        const html = purify.sanitize(marked.parse(text, {async: false}), MARKDOWN_PURIFY);
        for (const a of html.querySelectorAll("a[href], area[href]")) {  // an image map's too
          a.target = "_blank";
          a.rel = "noopener noreferrer";
        }
        putMath(html, math, katex);
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
