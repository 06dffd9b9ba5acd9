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
      if (tabLeaves && this._commandKey(event)) return;
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

    /** Jupyter's command keys, after an Escape: M makes the cell Markdown, Y code; A and B
     * ask for a new cell above or below it (cellbus:insert, which a worksheet answers).
     * True if `event` (the key after an Escape) was one of them. */
    _commandKey(event) {
      const key = typeof event.key === "string" ? event.key.toLowerCase() : "";
      if (!"myab".includes(key) || key.length !== 1 || event.ctrlKey || event.metaKey
          || event.altKey) {
        return false;
      }
      event.preventDefault();
      if (key === "a" || key === "b") this._event("insert", {above: key === "a"});
      else this.setType(key === "m" ? "markdown" : "code");
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

    /** A Promise of the session's completions of `code` at `cursorPos` (code points): its
     * complete_reply content, or null (a Markdown cell, HTTP, no session, no answer). */
    complete(code, cursorPos) {
      if (this.type !== "code") return Promise.resolve(null);
      return this.channel.complete(this, code, cursorPos);
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
