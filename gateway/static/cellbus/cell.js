  // ---- Cell -----------------------------------------------------------------------------

  // The class: its options, state and life (made, evaluated, restored after a reload,
  // destroyed) and what its transport tells it. What it shows is in cellview.js, its type,
  // kernel and keys in celltype.js, its @interacts in cellinteracts.js (methods added to
  // Cell.prototype by those files, which follow this one).

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
  /** What an aborted cell says (stop_on_error): it did not run, and why. */
  const ABORTED_NOTICE = "Not run: a cell queued before it failed, so the cells queued " +
    "behind that one were skipped (run this one again to run it).";

  /** Whether a run of `code` shows its execution number `count`: blank code is no run the
   * session counts (as in IPython, protocol/counts.py), so its number is the last cell's,
   * not its own. */
  function counted(code, count) {
    return Number.isInteger(count) && typeof code === "string" && code.trim() !== "";
  }

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
      this.heldCount = null;   // a run restored running: its number, shown when it ends
      this.sawOutput = false;
      this.noOutputTimer = null;
      this.interacts = new Map();    // interact_id -> its InteractView on screen
      this.runs = new Map();         // an interact run's msg_id -> {fold}: its output
      this.type = "code";            // or "markdown": rendered in place, never sent anywhere
      this.restored = Promise.resolve();  // settles once the cell shows what the store has
      this.restoring = false;  // its /update (what the store has) is on its way (_restore)
      this.missedRun = null;   // {parent, code} of a run another page started meanwhile
      // The run whose output was cleared (Clear output; a worksheet's layout keeps it as
      // outputs_cleared): a reload shows it cleared, until the cell runs again.
      this.cleared = typeof o.cleared === "string" ? o.cleared : null;
      this.storedRun = null;   // the run the store showed after a reload (_showStored)
      this._build(element, o);
      allCells.add(this);
      this.channel.register(this);
      if (o.type === "markdown") {
        this.setType("markdown");
        if (this.input.value) this.render();
      } else if (o.autoeval) this.evaluate();
      else if (o.restore) this.restored = this._restore().catch(() => { /* shows none */ });
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

    /** This cell's URL for `action` on its gateway, and fetch() with its token, its
     * answer read whole (PollTransport.ask). */
    _url(action) {
      return this.channel.url(this, action);
    }

    _ask(url, init) {
      return this.channel.ask(url, init);
    }

    /** Evaluate the code in the input; the old output stays, marked stale, until new comes. */
    evaluate() {
      if (this.type === "markdown") {
        this.render();
        return;
      }
      const code = this.input.value;
      this._pending(false);
      const gen = ++this.generation;
      if (this.requestId) this.channel.forget(this.requestId);
      this.requestId = null;
      this.heldCount = null;
      this.cleared = null;  // a new run shows its output
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
      if (this.channel.lost) this._connection(false);  // it goes once the page is back
    }

    /** Show the run `parent`, which this page did not start, from its prompt on (see
     * Channel._adoptPrompts); false if the cell is busy with a run of its own. */
    adoptRun(parent) {
      if (this.busy) return false;
      ++this.generation;
      this.requestId = parent;
      this.heldCount = null;
      this.cleared = null;
      this.fold = new Fold();
      this.runs.clear();
      this.interacts.clear();
      this.sawOutput = false;
      this.started = performance.now();
      this._setBusy(true);
      this._setStatus("running");
      return true;
    }

    /** Show the run `parent` another page started in this cell (Channel._follow), as its
     * own evaluate would: the output before it stays, marked stale, until new comes; false
     * if the cell is busy with a run of its own. */
    followRun(parent) {
      const stale = !this.view.empty;
      if (!this.adoptRun(parent)) return false;
      this._pending(false);
      showUsage(this, null);
      this._hideNotice();
      this.outputElement.classList.toggle("cellbus-stale", stale);
      return true;
    }

    /** A Promise of the session's completions of `code` at `cursorPos` (code points): its
     * complete_reply content, or null (a Markdown cell, HTTP, no session, no answer). */
    complete(code, cursorPos) {
      if (this.type !== "code") return Promise.resolve(null);
      return this.channel.complete(this, code, cursorPos);
    }

    /** A Promise of the session's help on the name at `cursorPos`: its inspect_reply
     * content, or null (as complete). */
    inspect(code, cursorPos) {
      if (this.type !== "code") return Promise.resolve(null);
      return this.channel.inspect(this, code, cursorPos);
    }

    interrupt() {
      if (!this.busy) return;
      this.channel.interrupt(this);
    }

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
      if (type === "execute_input") this._counted(msg.content.code, msg.content.execution_count);
      if (this.fold.apply(seq, msg)) this._show(this.fold.view());
      if (type === "execute_reply") {
        this.replyStatus = msg.content.status;
        showUsage(this, msg.metadata && msg.metadata.usage);
      } else if (type === "status" && msg.content.execution_state === "idle") {
        const reply = this.replyStatus;
        this._finish(reply === "ok" || !reply ? "done" : reply === "aborted" ? "aborted" : "error");
      }
    }

    /** The run's execution number `count` (its code: `code`), once known, from its
     * execute_input or its /update document: shown, and told to the page (cellbus:count)
     * once. */
    _counted(code, count) {
      if (!counted(code, count) || this.count.textContent === "[" + count + "]") return;
      this._setCount(String(count));
      this._event("count", {count: count});
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
     * An evaluation started meanwhile wins. While the store's answer is on its way, the
     * socket's live feed does not start to show a run in this cell (Channel._follow): on a
     * loaded machine it can come first, and showing a run from there on lost its output
     * before the reload. A run that went by meanwhile and is not the store's answer (it
     * started after) is followed over HTTP from its start. */
    async _restore() {
      const gen = this.generation;
      this.restoring = true;
      let doc;
      try {
        doc = await this.channel.document(this, 0);
      } finally {
        this.restoring = false;
      }
      const missed = this.missedRun;
      this.missedRun = null;
      if (gen !== this.generation) return;
      // The page hears of a run that went by as of one the feed showed (the worksheet then
      // takes the store's layout, where the page that ran it saved its code).
      if (missed) this._event("followed", {cellId: this.cellId, code: missed.code});
      if (doc && doc.request) this._showStored(doc);
      if (missed && (!doc || doc.request !== missed.parent) && this.followRun(missed.parent)) {
        this.channel.follow(this, missed.parent, null);
      }
    }

    /** Show `doc`, the cell's /update document of its last request (see _restore): of a
     * run whose output was cleared (`cleared`), as Jupyter after Clear output, neither its
     * output nor its number (the store keeps them: its /update has them). */
    _showStored(doc) {
      if (!this.input.value && typeof doc.input === "string") {
        this.input.value = doc.input;
        this._fit();
      }
      this.storedRun = doc.request;
      const ended = doc.status !== "needs_work" && doc.status !== "working";
      if (ended && this.cleared !== null && doc.request === this.cleared) return;  // cleared
      if (isObject(doc.output) && Object.keys(doc.output).length) {
        this.fold = new StoredBlocks(doc.output);  // an interact in it runs again from here
        this.sawOutput = true;
        this._show(doc.output);
      }
      if (doc.status === "needs_work" || doc.status === "working") {
        this.requestId = doc.request;
        if (counted(doc.input, doc.execution_count)) this.heldCount = doc.execution_count;
        this._setBusy(true);
        this._setStatus(doc.status === "working" ? "running" : "queued");
        this.channel.follow(this, doc.request, doc);
      } else if (doc.status in STATUS_TEXT) {
        if (counted(doc.input, doc.execution_count)) this._setCount(String(doc.execution_count));
        showUsage(this, doc.usage);
        if (doc.aborted) this._finish("aborted");
        else this._setStatus(doc.status);
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
      this._finish(doc.aborted ? "aborted" : doc.status);
    }

    /** Answer the prompt the cell's run waits on; null when sent, else what went wrong. */
    async answerPrompt(value, prompt) {
      try {
        // A prompt no longer waiting is answered 200 {conflict}, not 409 (a console error).
        const r = await this._ask(this._url("input?on_conflict=report"), {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(Number.isInteger(prompt) ? {value: value, prompt: prompt}
                               : {value: value}),
        });
        if (r.status === 202) return null;
        const body = r.body || {};
        // 409: answered already (maybe by an earlier try of ours whose reply was lost),
        // stale, or the run ended; the output shows which once it updates.
        if (r.status === 409 || (r.ok && body.conflict === true)) {
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
  }
