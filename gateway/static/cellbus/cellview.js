  // ---- Cell: what the person sees ----------------------------------------------------------

  // Methods of Cell (cell.js): its elements (code box, bar with the execution number,
  // Evaluate and Stop buttons, working indicator and status; the no-output notice; the
  // output area, drawn once per animation frame), what they show as a run goes on and
  // ends, and the cellbus:* events that tell the page.
  Object.assign(Cell.prototype, {
    _build(element, o) {
      this.element = element;
      element.classList.add("cellbus-cell");
      element.textContent = "";
      // A screen reader's user moves by cell (a group named for it) and hears its output
      // as a log of what the run wrote; before, a worksheet read as one list of boxes and
      // buttons, and a run's output as unnamed text between one cell's buttons and the next.
      element.setAttribute("role", "group");
      element.setAttribute("aria-label", "cell " + this.cellId);
      this.input = el("textarea", "cellbus-input");
      this.input.value = o.code;
      this.input.wrap = "off";
      this.input.placeholder = codeHint(o);
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
      this.outputElement.setAttribute("role", "log");  // (aria-live polite, as before)
      this.outputElement.setAttribute("aria-live", "polite");
      this.outputElement.setAttribute("aria-label", "output of cell " + this.cellId);
      this.view = new OutputView(this.outputElement, this);
      // In the output's place while it is hidden (toggleOutput), as JupyterLab's "…".
      // (Its name holds what it shows, for speech control: "click Show output".)
      this.collapsed = el("button", "cellbus-collapsed", "Show output");
      this.collapsed.type = "button";
      this.collapsed.hidden = true;
      this.collapsed.title = "the output is hidden: show it again (Escape then O)";
      this.collapsed.setAttribute("aria-label", "Show output (cell " + this.cellId + ")");
      this.collapsed.addEventListener("click", () => {
        this.toggleOutput(false);
        this.focus();  // (the button it was on is gone)
      });
      this.rendered = el("div", "cellbus-markdown");  // a Markdown cell, rendered
      this.rendered.hidden = true;
      this.rendered.tabIndex = 0;
      this.rendered.title = "double-click (or Enter) to edit";
      this.rendered.addEventListener("dblclick", () => this.edit());
      this.rendered.addEventListener("keydown", (event) => this._renderedKey(event));
      element.append(this.input, this.rendered, bar, this.notice, this.collapsed,
                     this.outputElement);
      this.editor = attachEditor(this);  // null: the plain textarea
      this._fit();
      this._setStatus("idle");
    },

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
    },

    /** Focus the code box, or a rendered Markdown cell's text (its code box is hidden:
     * focused, it took no keys, and the focus fell to the page's body). */
    focus() {
      if (!this.rendered.hidden) this.rendered.focus();
      else if (this.editor) this.editor.focus();
      else this.input.focus();
    },

    /** Hide the output, or show it again (`hidden`; by default the other of what it is),
     * as JupyterLab's Escape then O: a button in its place says it is hidden and shows it;
     * what a run writes meanwhile is kept, and shows with it. The focus stays where it is. */
    toggleOutput(hidden) {
      const hide = typeof hidden === "boolean" ? hidden : !this.outputElement.hidden;
      this.outputElement.hidden = hide;
      this.collapsed.hidden = !hide;
      this._event("output", {hidden: hide});
    },

    /** What a worksheet's layout keeps of this cell: {id, type, code}, and outputs_hidden
     * (true only) while its output is hidden, so a reload, another tab and the notebook's
     * download (Jupyter's metadata.jupyter.outputs_hidden) keep it hidden. */
    entry() {
      const entry = {id: this.cellId, type: this.type, code: this.input.value};
      if (this.outputElement.hidden) entry.outputs_hidden = true;
      if (this.cleared !== null) entry.outputs_cleared = this.cleared;
      return entry;
    },

    /** The run whose output the cell shows: its own or one it followed (requestId), or the
     * one the store showed after a reload; null if none. */
    shownRun() {
      return this.requestId || this.storedRun;
    },

    /** Clear the output, as Jupyter's Clear output: the worksheet's layout keeps which run's
     * it was (entry's outputs_cleared, told with cellbus:cleared), so a reload, another tab
     * and the notebook's download show it cleared until the cell runs again. The store keeps
     * the output (exactly once: the run's permalink and /update still have it). A run under
     * way is cleared on the page only: what it writes next shows. */
    clearOutput() {
      const run = this.shownRun();
      if (!this.busy && run && this.cleared !== run) {
        this.cleared = run;
        this._event("cleared", {run: run});
      }
      this.view.clear();
      this.outputElement.classList.remove("cellbus-stale");
      this._hideNotice();
      if (!this.busy) {
        this.count.hidden = true;
        this._setStatus("idle");
      }
    },

    _show(blocks) {
      if (!this.sawOutput && Object.keys(blocks).length) {
        this.sawOutput = true;
        this.outputElement.classList.remove("cellbus-stale");
        clearTimeout(this.noOutputTimer);
        this._hideNotice();
      }
      if (this.sawOutput) this._drawSoon(blocks);
    },

    /** Draw `blocks` at the next animation frame: a flood of output messages costs one
     * drawing per frame, and the status and Stop button (changed at once) stay current. */
    _drawSoon(blocks) {
      const first = this.pending === undefined || this.pending === null;
      this.pending = {blocks: blocks, generation: this.generation};
      if (!first) return;
      requestAnimationFrame(() => this._drawNow());
    },

    _drawNow() {
      const pending = this.pending;
      this.pending = null;
      if (!pending || pending.generation !== this.generation) return;
      // Blocks taken away within a run (clear_output) keep the output's height a moment;
      // a new run's output replacing the last run's does not.
      this.view.update(pending.blocks, this.drawnGeneration === pending.generation);
      this.drawnGeneration = pending.generation;
    },

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
    },

    _hideNotice() {
      this.notice.hidden = true;
      this.notice.textContent = "";
      this.element.classList.remove("cellbus-waiting");
    },

    /** Marked as waiting for its turn in a Run all (`on`), [*] and "waiting to run", or
     * no longer (its turn came: evaluate; or the Run all stopped before it): the number and
     * status it showed come back. */
    _pending(on) {
      if (on && !this.busy && !this.waitingFor) {
        this.waitingFor = {count: this.count.textContent, hidden: this.count.hidden};
        this._setCount("*");
        this.statusText.textContent = "waiting to run (Run all)";
        this.element.classList.add("cellbus-pending");
      } else if (!on && this.waitingFor) {
        const before = this.waitingFor;
        this.waitingFor = null;
        this.element.classList.remove("cellbus-pending");
        if (this.busy) return;  // its run shows its own
        this.count.textContent = before.count;
        this.count.hidden = before.hidden;
        this._setStatus(this.status);
      }
    },

    _setCount(text) {
      this.count.textContent = "[" + text + "]";
      this.count.hidden = false;
    },

    _setBusy(busy) {
      if (busy) this._setCount("*");
      else if (this.count.textContent === "[*]") {  // no number came but the stored one's
        if (Number.isInteger(this.heldCount)) this._setCount(String(this.heldCount));
        else this.count.hidden = true;
      }
      this.busy = busy;
      this.working.hidden = !busy;
      setHidden(this.stopButton, !busy, this.button);
      this.element.classList.toggle("cellbus-busy", busy);
    },

    /** Tell the page: a "cellbus:NAME" event on the cell's element (it bubbles). */
    _event(name, detail) {
      this.element.dispatchEvent(new CustomEvent("cellbus:" + name, {
        bubbles: true, detail: Object.assign({cell: this}, detail)}));
    },

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
    },

    _finish(status, message) {
      // Aborted (stop_on_error): the cell did not run; say why, or it looks like a failure.
      if (status === "aborted" && !message) message = ABORTED_NOTICE;
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
    },
  });
