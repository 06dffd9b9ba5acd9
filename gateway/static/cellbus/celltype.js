  // ---- Cell: its type, its kernel and its keys ---------------------------------------------

  // Methods of Cell (cell.js): code or Markdown (rendered in place, never sent), the
  // kernel's language in the editor, and the code box's keys (Shift+Enter, Tab, and
  // Jupyter's command keys after Escape).
  /** Keys that are only a modifier pressed: no key of their own (Escape, then Shift+M is a
   * command key still; before, the Shift's own keydown ended the command keys). */
  const MODIFIERS = ["Shift", "Control", "Alt", "Meta", "AltGraph", "CapsLock"];

  /** Ctrl+Shift+Minus, Jupyter's split. */
  function splitKey(event) {
    return event.ctrlKey && event.shiftKey && !event.altKey && !event.metaKey
      && (event.code === "Minus" || event.key === "_" || event.key === "-");
  }

  /** Jupyter's command keys pressed twice, after an Escape, and the cellbus:* event each
   * sends (which a worksheet answers). */
  const DOUBLED = {d: "delete", i: "interrupt", 0: "restart"};

  Object.assign(Cell.prototype, {
    _key(event) {
      if (event.isComposing || MODIFIERS.includes(event.key)) return;
      if (splitKey(event)) {
        event.preventDefault();
        this.tabLeaves = false;
        this._split();
        return;
      }
      const tabLeaves = this.tabLeaves;
      this.tabLeaves = event.key === "Escape";  // then Tab leaves the box: no keyboard trap
      if (tabLeaves && this._commandKey(event)) {
        this.tabLeaves = Boolean(this.commandHeld);  // a first D: command keys still
        return;
      }
      if (event.key === "Tab" && (!tabLeaves || event.shiftKey) && !event.ctrlKey && !event.metaKey
          && !event.altKey) {
        event.preventDefault();
        indent(this.input, event.shiftKey);
      } else if (event.key === "Enter" && event.altKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        this._runAndInsert();
      } else if (event.key === "Enter" && (event.shiftKey || event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.evaluate();
        if (event.shiftKey && this.options.onShiftEnter) this.options.onShiftEnter(this);
      } else if (event.key === "Enter" && !event.altKey) {
        event.preventDefault();
        newLine(this.input);
      } else if ((event.key === "ArrowUp" || event.key === "ArrowDown") && !event.shiftKey
                 && !event.altKey && !event.ctrlKey && !event.metaKey) {
        this._arrow(event);
      }
    },

    /** A rendered Markdown cell's keys, as JupyterLab's command mode takes them there (it
     * has no code box to type into): Enter edits it, Shift+Enter goes on to the next cell,
     * Up and Down go to the cell above or below, and Jupyter's command keys need no Escape
     * first (K, J, D, D, A, B, C, X, V, Z, Y...). Before, only Enter did anything: a keyboard
     * user who came to it with Escape then K or J could go no further, nor delete it. */
    _renderedKey(event) {
      if (event.isComposing || MODIFIERS.includes(event.key) || event.key === "Escape") return;
      const plain = !event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey;
      if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        this.edit();
      } else if (event.key === "Enter" && event.shiftKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        if (this.options.onShiftEnter) this.options.onShiftEnter(this);
      } else if ((event.key === "ArrowUp" || event.key === "ArrowDown") && plain) {
        if (this._leave(event.key === "ArrowUp" ? -1 : 1, 0)) event.preventDefault();
      } else {
        this._commandKey(event);
      }
    },

    /** Up on the box's first line, Down on its last: the cell above or below. */
    _arrow(event) {
      const box = this.input, up = event.key === "ArrowUp";
      if (box.selectionStart !== box.selectionEnd) return;
      const at = box.selectionStart;
      const edge = up ? box.value.lastIndexOf("\n", at - 1) === -1
        : box.value.indexOf("\n", at) === -1;
      const column = at - box.value.lastIndexOf("\n", at - 1) - 1;
      if (edge && this._leave(up ? -1 : 1, column)) event.preventDefault();
    },

    /** Ctrl+Shift+Minus: the code after the cursor goes to a new cell below this one
     * (cellbus:split, which a worksheet answers), the line break at the cut with neither. */
    _split() {
      const value = this.input.value;
      const at = this.editor ? this.editor.indexFromPos(this.editor.getCursor())
        : this.input.selectionStart;
      this.setCode(value.slice(0, at).replace(/\n$/, ""));
      this._event("split", {code: value.slice(at).replace(/^\n/, "")});
    },

    /** Put `code` in the code box, as typing it would (the editor follows, the page saves). */
    setCode(code) {
      this.input.value = code;
      this.input.dispatchEvent(new Event("input"));
    },

    /** Alt+Enter: evaluate, then a new cell below this one (a worksheet's onAltEnter). */
    _runAndInsert() {
      this.evaluate();
      if (this.options.onAltEnter) this.options.onAltEnter(this);
    },

    /** Go to the cell `by` places away (-1: above) at `column` (a worksheet's onLeave);
     * false if there is none. */
    _leave(by, column) {
      return Boolean(this.options.onLeave && this.options.onLeave(this, by, column));
    },

    /** Focus the code box on its first (`where`: "first") or last line, at `column` or the
     * line's end; a rendered Markdown cell is focused as it is (Enter edits it). */
    focusLine(where, column) {
      if (!this.rendered.hidden) {
        this.rendered.focus();
        return;
      }
      if (this.editor) {
        const line = where === "first" ? this.editor.firstLine() : this.editor.lastLine();
        this.editor.focus();
        this.editor.setCursor({line: line, ch: column});
        return;
      }
      const value = this.input.value;
      const start = where === "first" ? 0 : value.lastIndexOf("\n") + 1;
      const end = where === "first" && value.includes("\n") ? value.indexOf("\n") : value.length;
      this.input.focus();
      const at = Math.min(start + column, end);
      this.input.setSelectionRange(at, at);
    },

    /** Run later evaluations in `kernel`, and highlight the code in its language (and
     * name that in the empty box's hint). */
    setKernel(kernel) {
      this.options.kernel = kernel;
      if (this.type !== "code") return;
      this.input.placeholder = codeHint(this.options);
      if (this.editor) {
        this.editor.setOption("mode", modeOf(kernel));
        this.editor.setOption("placeholder", this.input.placeholder);
      }
    },

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
        : codeHint(this.options);
      if (this.editor) {
        this.editor.setOption("mode", markdown ? null : modeOf(this.options.kernel));
        this.editor.setOption("placeholder", this.input.placeholder);
        this.editor.setOption("screenReaderLabel", this.input.getAttribute("aria-label"));
      }
      if (!markdown && !this.rendered.hidden) this.edit();
      this._event("type", {type: type});
    },

    /** Escape then K or J: the cell above or below (`by`), at its start, as Jupyter's
     * command mode selects it; the keys after it are command keys still, there (or here, if
     * there is no such cell), so K, K goes two cells up. */
    _select(by) {
      this.commandHeld = "k";  // (no doubled key) command keys still, here until it goes
      // After the key's own handling: CodeMirror ends it by focusing the editor it was in.
      setTimeout(() => {
        if (!this._leave(by, 0)) return;
        this.commandHeld = null;
        this.tabLeaves = false;
        for (const cell of allCells) {
          if (cell !== this && cell.element.contains(document.activeElement)) cell.tabLeaves = true;
        }
      }, 0);
    },

    /** Jupyter's command keys, after an Escape: M makes the cell Markdown, Y code; K and J
     * (Up and Down) go to the cell above or below (and stay command keys: _select); A and B
     * ask for a new cell above or below it (cellbus:insert, which a worksheet answers), Z
     * for the last cell deleted back (cellbus:undelete), Shift+M for the cell below merged
     * into this one (cellbus:merge), C and X for it copied or cut (the keys after them
     * are command keys still, here or in the cell that has the focus after a cut, so X then
     * V moves a cell down), V and Shift+V for the cell copied pasted below or above it
     * (cellbus:copy, cut, paste), O for its output hidden or shown again, Enter for the
     * code to edit again (no new line typed: Escape, J, Enter edits the cell below as in
     * Jupyter; before, it typed a new line into it); and each key of DOUBLED pressed twice, D, D for this
     * cell deleted, I, I for the running cell stopped, 0, 0 for the session restarted (each
     * key typed into the code before). True if `event` (the key after an Escape) was one of
     * them; `commandHeld` is then whether the keys after it are still command keys (the
     * first of a doubled key, waiting for its second). */
    _commandKey(event) {
      // Up and Down are K and J there, as in JupyterLab's command mode: the cell above or
      // below, wherever the cursor is (before, Escape then Up moved it a line up).
      const arrow = event.shiftKey ? null : {ArrowUp: "k", ArrowDown: "j"}[event.key];
      const key = arrow || (typeof event.key === "string" ? event.key.toLowerCase() : "");
      const held = this.commandHeld;
      this.commandHeld = null;
      if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.metaKey
          && !event.altKey) {
        event.preventDefault();  // Jupyter's Enter in command mode: edit the cell, type nothing
        return true;
      }
      if (!"myabzdi0jkcxvo".includes(key) || key.length !== 1 || event.ctrlKey || event.metaKey
          || event.altKey || (held in DOUBLED && key !== held)) {  // (D then X: typed, as before)
        return false;
      }
      event.preventDefault();
      if (key === "j" || key === "k") {
        this._select(key === "k" ? -1 : 1);
      } else if (key in DOUBLED) {
        if (held === key) this._event(DOUBLED[key], {});
        else this.commandHeld = key;
      } else if (key === "m" && event.shiftKey) this._event("merge", {});
      else if (key === "a" || key === "b") this._event("insert", {above: key === "a"});
      else if (key === "z") this._event("undelete", {});
      else if (key === "o" && !event.shiftKey) this.toggleOutput();
      else if (key === "c" || key === "x") {
        if (key === "c") this.commandHeld = "c";  // command keys still: C then V pastes
        this._event(key === "c" ? "copy" : "cut", {});
      }
      else if (key === "v") this._event("paste", {above: event.shiftKey});
      else this.setType(key === "m" ? "markdown" : "code");
      return true;
    },

    /** Show a Markdown cell's text rendered, in place of its editor; sends cellbus:rendered.
     * The focus the editor had goes to the rendered text (Enter edits it again), not to the
     * page's body as the editor hides. */
    render() {
      const box = this.editor ? this.editor.getWrapperElement() : this.input;
      const focused = box.contains(document.activeElement);
      this._showEditor(false);
      this.rendered.hidden = false;
      showMarkdown(this.rendered, this.input.value);
      if (focused) this.rendered.focus({preventScroll: true});
      this._event("rendered", {});
    },

    /** Edit a rendered Markdown cell again. */
    edit() {
      this.rendered.hidden = true;
      this._showEditor(true);
      this.focus();
    },

    _showEditor(show) {
      const box = this.editor ? this.editor.getWrapperElement() : this.input;
      box.style.display = show ? "" : "none";
      if (!show) return;
      if (this.editor) this.editor.refresh();
      else this._fit();
    },
  });
