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
      // Markdown output (IPython's Markdown, _repr_markdown_) rendered as a Markdown cell
      // is: marked, then DOMPurify (helpers.js showMarkdown: inert, links in a new tab).
      if (block.mime === "text/markdown") {
        const node = el("div", "cellbus-md");
        node.dataset.mime = block.mime;
        showMarkdown(node, block.content);
        return node;
      }
      if (block.mime === "text/latex") {  // IPython's Math and Latex, sympy: KaTeX (math.js)
        const node = el("div", "cellbus-latex");
        node.dataset.mime = block.mime;
        showLatex(node, block);
        return node;
      }
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
      // Jupyter's rule: entries are joined by newlines (ipykernel's and the built-in
      // session's alike; those stored before the built-in one did so end in one, joined
      // as they were).
      const joint = tb.every((line) => String(line).endsWith("\n")) ? "" : "\n";
      const text = tb.length ? tb.join(joint) : block.ename + ": " + block.evalue;
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
    // Read-only while the answer is sent, not disabled: a disabled box loses the focus to
    // the page's body; this one keeps it until the block closes (OutputView.update).
    box.addEventListener("keydown", async (event) => {
      if (event.key !== "Enter" || box.readOnly) return;
      event.preventDefault();
      box.readOnly = true;
      box.setAttribute("aria-busy", "true");
      notice.textContent = "";
      const error = await cell.answerPrompt(box.value, block.seq);
      if (error === null) return;  // the block closes when the session goes on
      notice.textContent = error;
      box.readOnly = false;
      box.removeAttribute("aria-busy");
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

  /** ms an output keeps its height after blocks were taken away (clear_output(wait=True):
   * an animation's frame replaced by the next), while the next frame's images decode and its
   * HTML frames load: it does not collapse and jump back (flicker), as Jupyter's does not. */
  const CLEAR_HOLD = 1000;

  /** Keeps an output element showing a set of blocks; redraws only what changed. */
  class OutputView {
    constructor(element, cell) {
      this.element = element;
      this.cell = cell || null;  // what interact controls send their changes through
      this.shown = new Map();  // id -> {block: {type, seq, content}, node}
      this.frameHeights = [];  // heights of HTML frames just taken away, for the next ones
      this.releaseTimer = null;
    }

    /** Show `blocks`; `hold`: keep the height for CLEAR_HOLD if blocks go (not for a
     * clear of the whole output, its Clear button or a new run). A block that goes holding
     * the focus (a prompt answered) hands it to its cell's code, not to the page's body. */
    update(blocks, hold) {
      const focused = this.element.contains(document.activeElement) ? document.activeElement
        : null;
      const gone = Array.from(this.shown.keys()).filter((id) => !(id in blocks));
      if (gone.length && hold !== false) this._hold(gone);
      for (const id of gone) {
        this.shown.get(id).node.remove();
        this.shown.delete(id);
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
      if (focused && !focused.isConnected && this.cell) this.cell.focus();
    }

    _draw(id, block, entry) {
      // A node that can take the new block itself: a growing text appends only what is new
      // (TextView), an interact's controls stay put while its output changes under them.
      if (entry && entry.type === block.type && typeof entry.node.cellbusUpdate === "function"
          && entry.node.cellbusUpdate(block)) {
        return Object.assign(entry, {seq: block.seq, block: block});
      }
      const node = renderBlock(id, block, this.cell);
      if (node.tagName === "IFRAME" && this.frameHeights.length) {
        node.style.height = this.frameHeights.shift();  // until it says its own
      }
      if (entry) entry.node.replaceWith(node);
      return {node: node, seq: block.seq, block: block, type: block.type};
    }

    /** Blocks `gone` are about to go: the output keeps its height (a min-height) until
     * CLEAR_HOLD after the last such change, and new HTML frames start as tall as theirs. */
    _hold(gone) {
      const height = this.element.getBoundingClientRect().height;
      if (!height) return;
      this.frameHeights = gone.map((id) => this.shown.get(id).node)
        .filter((node) => node.tagName === "IFRAME" && node.style.height)
        .map((node) => node.style.height);
      const held = parseFloat(this.element.style.minHeight) || 0;
      this.element.style.minHeight = Math.max(held, height) + "px";
      clearTimeout(this.releaseTimer);
      this.releaseTimer = setTimeout(() => this._release(), CLEAR_HOLD);
    }

    _release() {
      clearTimeout(this.releaseTimer);
      this.releaseTimer = null;
      this.element.style.minHeight = "";
      this.frameHeights = [];
    }

    clear() {
      this.update({}, false);
      this._release();
      this.element.textContent = "";
    }

    get empty() {
      return this.shown.size === 0;
    }
  }
