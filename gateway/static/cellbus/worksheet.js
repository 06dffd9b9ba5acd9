  // ---- public API ---------------------------------------------------------------------------

  /** Turn `element` into a cell; see DEFAULTS above for the options. Returns the cell. */
  function makeCell(element, options) {
    if (typeof element === "string") element = document.querySelector(element);
    if (!element) throw new Error("cellbus.makeCell: no such element");
    return new Cell(element, options);
  }

  /** Cells that share one worksheet (one session), one after the other in `element`;
   * Shift+Enter evaluates and moves to the next cell, adding one after the last. Each cell
   * has a Code/Markdown selector and buttons to move it up or down, clear its output and
   * delete it (also Escape then D, D; Undo delete, or Escape then Z, brings it back); Escape
   * then A or B in a cell adds one above or below it, Ctrl+Shift+Minus splits it at the
   * cursor, Escape then Shift+M merges the one below into it, Escape then C, X and V copy,
   * cut and paste it, Alt+Enter evaluates and adds one below, Up on a cell's first
   * line and Down on its last go to the next cell. `codes`: the cells'
   * code, each a string or {id, type, code} (as `layout()` gives, to save); `ran`: the ids
   * of the cells the store has runs of (a layout read's), the only ones whose stored output
   * is asked for (a cell that never ran answers 404: a console error); `onChange(sheet)`
   * after cells were added, moved, deleted, retyped or rendered. Ctrl+F9 runs all (runAll).
   * Another page's run in a cell shows here too (its code, its output as it comes).
   * Returns {cells, add, move, remove, undelete, layout, follow, runAll, runAbove, runBelow,
   * restartRunAll, setKernel}. */
  function makeWorksheet(element, options) {
    const o = Object.assign({cells: 3, codes: []}, options || {});
    if (!o.worksheet) throw new Error("cellbus.makeWorksheet: a worksheet name is needed");
    const cells = [];
    const list = el("div", "cellbus-worksheet");
    element.appendChild(list);
    const session = new SessionBar(o.kernel, cells);
    list.appendChild(session.node);
    list.addEventListener("cellbus:status", (event) => {
      if (event.detail.status === "sending") session.sent(event.detail.cell);
      else if (event.detail.status in FINISHED) session.ended(event.detail.cell);
      else session.show();
    });
    list.addEventListener("cellbus:session", () => session.replaced());
    list.addEventListener("cellbus:closed", (event) => session.closed(event.detail.reason));
    list.addEventListener("cellbus:started", () => session.started());
    list.addEventListener("cellbus:idle", (event) => session.idled(event.detail.since,
                                                                   event.detail.timeout));
    list.addEventListener("cellbus:count", (event) => session.counted(event.detail.count));
    list.addEventListener("cellbus:lost", () => session.lost());
    list.addEventListener("cellbus:type", (event) => {
      const select = event.target.querySelector(".cellbus-type");
      if (select) select.value = event.detail.type;
      changed();
    });
    list.addEventListener("cellbus:rendered", () => changed());
    list.addEventListener("cellbus:output", () => changed());  // hidden or shown (Escape then O)
    list.addEventListener("cellbus:cleared", () => changed());  // Clear output: kept cleared
    list.addEventListener("cellbus:undelete", () => setTimeout(undelete, 0));
    // Escape then D, D in a cell: after the key's own handling, as for A and B below.
    list.addEventListener("cellbus:delete", (event) => setTimeout(() => remove(event.detail.cell), 0));
    // Escape then I, I: the running cells stopped, as Jupyter's interrupt; 0, 0: a restart.
    list.addEventListener("cellbus:interrupt", () => {
      for (const cell of cells) if (cell.status === "running") cell.interrupt();
    });
    list.addEventListener("cellbus:restart", () => session.restart());
    list.addEventListener("cellbus:merge", (event) => setTimeout(() => merge(event.detail.cell), 0));
    // Escape then C, X, V (Shift+V): after the key's own handling, as for A and B below.
    list.addEventListener("cellbus:copy", (event) => copy(event.detail.cell, false));
    list.addEventListener("cellbus:cut", (event) => setTimeout(() => copy(event.detail.cell, true), 0));
    list.addEventListener("cellbus:paste", (event) => {
      setTimeout(() => paste(event.detail.cell, event.detail.above), 0);
    });
    list.addEventListener("cellbus:split", (event) => {  // Ctrl+Shift+Minus in a cell
      const at = cells.indexOf(event.detail.cell);
      if (at < 0) return;
      const cell = add({type: event.detail.cell.type, code: event.detail.code}, at + 1);
      setTimeout(() => cell.focusLine("first", 0), 0);  // after the key, as for A and B
    });
    list.addEventListener("cellbus:insert", (event) => {  // Escape then A or B in a cell
      const at = cells.indexOf(event.detail.cell);
      if (at < 0) return;
      const cell = add("", event.detail.above ? at : at + 1);
      // After the key's own handling: CodeMirror ends it by focusing the editor it was in.
      setTimeout(() => cell.focus(), 0);
    });
    let nextId = 1;
    let loading = true;
    let quiet = false;  // what another page's run changes is not this page's to save
    // Cells added for another client's runs that no layout has shown yet (the HTTP API's,
    // a Jupyter client's: they keep none): follow() keeps them.
    const unsaved = new Set();
    const changed = () => {
      if (!loading && !quiet && o.onChange) o.onChange(sheet);
    };
    // Another page's run in a cell (Channel._follow): a cell of an id this page lacks is
    // added, last, and the cell shows the code that ran; then `onFollow(sheet, cellId, code)`
    // (the page takes the store's layout, where that page saved its cells: see follow).
    list.addEventListener("cellbus:followed", (event) => {
      const d = event.detail;
      quiet = true;
      try {
        let cell = cells.find((c) => c.cellId === d.cellId);
        if (!cell) {
          cell = add({id: d.cellId, code: ""});
          unsaved.add(d.cellId);
        }
        if (typeof d.code === "string" && cell.input.value !== d.code) cell.setCode(d.code);
      } finally {
        quiet = false;
      }
      if (o.onFollow) o.onFollow(sheet, d.cellId, d.code);
    });

    /** A new cell with `code` (a string or {id, code}) at `index` (default: last);
     * `restore`: show what the store has of its last run (a cell brought back). */
    function add(code, index, restore) {
      const entry = isObject(code) ? code : {code: code};
      const id = entry.id !== undefined ? String(entry.id) : String(nextId);
      nextId = Math.max(nextId, (parseInt(id, 10) || 0) + 1);
      const at = Number.isInteger(index) ? Math.max(0, Math.min(index, cells.length)) : cells.length;
      const box = el("div");
      list.insertBefore(box, at < cells.length ? cells[at].element : null);
      const cell = makeCell(box, Object.assign({}, o, {
        code: typeof entry.code === "string" ? entry.code : "", cellId: id, autoeval: false,
        type: entry.type === "markdown" ? "markdown" : "code",
        cleared: typeof entry.outputs_cleared === "string" ? entry.outputs_cleared : null,
        // A new cell has no past to show, nor has one the store names no run of (`ran`).
        restore: restore === true
          || (loading && o.restore !== false && (!Array.isArray(o.ran) || o.ran.includes(id))),
        onInput: (c) => {
          if (!quiet && o.onInput) o.onInput(c);
        },
        onShiftEnter: (c) => {
          const next = cells.indexOf(c) + 1;
          (cells[next] || add("")).focus();
        },
        onAltEnter: (c) => add("", cells.indexOf(c) + 1).focus(),
        onLeave: (c, by, column) => {
          const next = cells[cells.indexOf(c) + by];
          if (next) next.focusLine(by > 0 ? "first" : "last", column);
          return Boolean(next);
        },
      }));
      cells.splice(at, 0, cell);
      cell.bar.appendChild(tools(cell));
      if (entry.outputs_hidden === true) cell.toggleOutput(true);  // as it was saved
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
        return b;
      };
      // The cell's own Evaluate and Stop too: a screen reader's list of a worksheet's
      // buttons said "Evaluate" and "Stop" once a cell, not which.
      for (const b of [cell.button, cell.stopButton]) {
        b.setAttribute("aria-label", b.textContent + " (cell " + cell.cellId + ")");
      }
      button("↑", "Move up", mover(cell, -1));
      button("↓", "Move down", mover(cell, 1));
      button("Clear", "Clear output", () => cell.clearOutput());
      const hide = button("Hide", "Hide output", () => cell.toggleOutput());
      hide.setAttribute("aria-pressed", "false");
      hide.classList.add("cellbus-hide-output");  // (a Markdown cell has no output to hide)
      cell.element.addEventListener("cellbus:output", (event) => {
        hide.setAttribute("aria-pressed", String(event.detail.hidden));
      });
      button("✕", "Delete cell", () => remove(cell));
      return box;
    }

    /** Move `cell` `by` places (-1: up); the focus goes to its code, or back to `keep`
     * (the element that had it, which the move took from it). */
    function move(cell, by, keep) {
      const from = cells.indexOf(cell), to = from + by;
      if (from < 0 || to < 0 || to >= cells.length) return;
      cells.splice(from, 1);
      cells.splice(to, 0, cell);
      list.insertBefore(cell.element, to + 1 < cells.length ? cells[to + 1].element : null);
      if (keep) keep.focus();
      else cell.focus();
      changed();
    }
    /** A Move button's action: pressed with the keyboard (a click of detail 0), the focus
     * stays on the button, so Enter again moves the cell again; before, it went to the
     * code, and the next Enter typed a new line into it. Clicked, the code has it. */
    const mover = (cell, by) => (event) => move(cell, by, event.detail === 0 ? event.currentTarget : null);

    // Delete and Escape then Z, copy, cut and paste (sheetedits.js).
    const edits = cellEdits(element, o, cells, add, changed);
    const remove = edits.remove, undelete = edits.undelete, copy = edits.copy, paste = edits.paste;

    /** Escape then Shift+M, as Jupyter's merge: the code of the cell below `cell` goes to
     * the end of its own, after a blank line, and that cell is deleted (Escape then Z
     * brings it back). */
    function merge(cell) {
      const next = cells[cells.indexOf(cell) + 1];
      if (!cells.includes(cell) || !next) return;
      const code = [cell.input.value, next.input.value].filter((c) => c !== "").join("\n\n");
      remove(next);
      cell.setCode(code);
      if (!cell.rendered.hidden) cell.render();  // a rendered Markdown cell shows it all
      cell.focusLine("first", 0);
    }

    /** Take `layout` ([{id, type, code}], another page's save) as this page's cells,
     * without saving it again: cells of its ids take its place, type, code, hidden output
     * and cleared run (the one shown here), the missing are added (none of their runs is
     * asked for) and those it lacks go, unless busy or added for another client's runs. */
    function follow(layout) {
      quiet = true;
      try {
        layout.forEach((entry, at) => {
          const id = String(entry.id);
          const cell = cells.find((c) => c.cellId === id);
          if (!cell) {
            add(entry, at, false);
            return;
          }
          if (cells.indexOf(cell) !== at) {
            cells.splice(cells.indexOf(cell), 1);
            cells.splice(at, 0, cell);
            list.insertBefore(cell.element, at + 1 < cells.length ? cells[at + 1].element : null);
          }
          if (cell.type !== entry.type) cell.setType(entry.type === "markdown" ? "markdown" : "code");
          if (cell.input.value !== entry.code && !cell.busy) cell.setCode(entry.code);
          if (cell.outputElement.hidden !== (entry.outputs_hidden === true)) cell.toggleOutput();
          if (!cell.busy && entry.outputs_cleared === cell.shownRun()) cell.clearOutput();
        });
        const kept = new Set(layout.map((entry) => String(entry.id)));
        for (const id of kept) unsaved.delete(id);
        for (const cell of cells.filter((c) => !kept.has(c.cellId) && !c.busy
                                        && !unsaved.has(c.cellId))) {
          cells.splice(cells.indexOf(cell), 1);
          cell.destroy();
          cell.element.remove();
        }
      } finally {
        quiet = false;
      }
    }

    /** What to save to make the same worksheet again: [{id, type, code, outputs_hidden?,
     * outputs_cleared?}] in order (type: "code" or "markdown"; Cell.entry). */
    function layout() {
      return cells.map((c) => c.entry());
    }

    const runs = runAll(list, o, cells, session);

    /** Run later evaluations in `kernel` (every cell's editor in its language), in a new
     * session if one runs another (SessionBar.changeKernel). */
    function setKernel(kernel) {
      o.kernel = kernel;
      cells.forEach((c) => c.setKernel(kernel));
      return session.changeKernel(kernel);
    }

    const sheet = {cells: cells, add: add, move: move, remove: remove, undelete: undelete,
                   layout: layout, follow: follow, runAll: runs.runAll, runAbove: runs.runAbove,
                   runBelow: runs.runBelow, restartRunAll: runs.restartRunAll, setKernel: setKernel,
                   options: o};
    // The cells a page loads with are made out of it, then measured (measureEditors).
    list.remove();
    for (let i = 0; i < Math.max(o.cells, o.codes.length); i++) add(o.codes[i]);
    element.appendChild(list);
    measureEditors(cells.map((c) => c.editor).filter(Boolean));
    loading = false;
    runs.resume();
    return sheet;
  }

  injectStylesheet();
  window.cellbus = {makeCell: makeCell, makeWorksheet: makeWorksheet, renderers: renderers,
                    Fold: Fold, share: share, sharedCode: sharedCode, sharedLink: sharedLink,
                    notebookLayout: notebookLayout, notebookKernel: notebookKernel,
                    notebookKernelName: notebookKernelName, layoutStore: layoutStore,
                    version: "0.1.0"};
