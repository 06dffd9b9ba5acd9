  // ---- A worksheet's cell edits: delete and bring back, copy, cut and paste -----------------

  /** How many deleted cells a worksheet can bring back. */
  const MAX_UNDO = 20;
  /** Where this browser keeps the cell copied or cut (Escape then C or X), for any tab. */
  const CLIPBOARD_KEY = "cellbus:clipboard";

  /** The edits of makeWorksheet's `cells` (in `element`, options `o`) that Jupyter's command
   * keys make: each a function of a cell ({remove, undelete, copy, paste}); `add` is the
   * worksheet's (a cell brought back or pasted), `changed` says the cells changed (a
   * remove: the page saves). Their notes (a cell deleted, with Undo delete; a cell
   * copied) go after the cells, each a status a screen reader reads out. */
  function cellEdits(element, o, cells, add, changed) {
    // The cells deleted, newest last, to bring back (Escape then Z, or Undo delete): each
    // with its place and whether the store has a run of it to show again.
    const deleted = [];
    const undo = el("div", "cellbus-undo");
    undo.setAttribute("role", "status");
    const undoText = el("span");
    const undoButton = el("button", "cellbus-tool", "Undo delete");
    undoButton.type = "button";
    undoButton.title = "Bring the last deleted cell back (Escape then Z)";
    undoButton.addEventListener("click", () => undelete());
    undo.append(undoText, undoButton);
    undo.hidden = true;
    element.appendChild(undo);
    // The cell copied or cut (Escape then C or X), and the note that says so.
    let clipboard = null;
    const clip = el("div", "cellbus-undo");
    clip.setAttribute("role", "status");
    const clipText = el("span");
    clip.appendChild(clipText);
    clip.hidden = true;
    element.appendChild(clip);
    const RAN = {queued: true, running: true, done: true, error: true, aborted: true};

    function showUndo() {
      const last = deleted[deleted.length - 1];
      undo.hidden = !last;
      if (last) undoText.textContent = "Cell " + last.entry.id + " deleted. ";
    }

    /** Bring the last deleted cell back, in its place, with its code and its last run. */
    function undelete() {
      const last = deleted.pop();
      showUndo();
      if (!last) return null;
      const cell = add(last.entry, last.at, last.ran);
      cell.focus();
      return cell;
    }

    function remove(cell) {
      const at = cells.indexOf(cell);
      if (at < 0) return;
      deleted.push({entry: cell.entry(), at: at,
                    ran: cell.type === "code" && cell.status in RAN});
      if (deleted.length > MAX_UNDO) deleted.shift();
      showUndo();
      cells.splice(at, 1);
      if (cell.busy) cell._event("status", {status: "removed", busy: false});  // for runAll
      cell.destroy();
      cell.element.remove();
      if (cells.length) cells[Math.min(at, cells.length - 1)].focus();
      changed();
    }

    /** Escape then C (X: cut, the cell deleted too, which Escape then Z brings back), as
     * Jupyter's copy: the cell's type and code kept for Escape then V, in this browser
     * (another tab's worksheet can paste it, as JupyterLab pastes between notebooks); said
     * in the clipboard note, for the keys show nothing else. */
    function copy(cell, cut) {
      const at = cells.indexOf(cell);
      if (at < 0) return;
      clipboard = {type: cell.type, code: cell.input.value, id: cut ? cell.cellId : null,
                   outputs_hidden: cell.entry().outputs_hidden === true,
                   ran: cut && cell.type === "code" && cell.status in RAN,
                   worksheet: o.user + "/" + o.worksheet};
      try { localStorage.setItem(CLIPBOARD_KEY, JSON.stringify(clipboard)); } catch (e) { /* full */ }
      clipText.textContent = "Cell " + cell.cellId + (cut ? " cut" : " copied")
        + ": Escape then V pastes it below a cell, Shift+V above.";
      clip.hidden = false;
      if (!cut) return;
      remove(cell);
      // The cell that has the focus now takes command keys still (X then V: a move).
      const next = cells.find((c) => c.element.contains(document.activeElement));
      if (next) next.tabLeaves = true;
    }

    /** Escape then V (Shift+V: above), as Jupyter's paste: a new cell below `cell` with
     * the type and code copied, focused. A cell cut from this worksheet and not back on the
     * page comes back as itself, its last run shown (as a move); a copy is a new cell. */
    function paste(cell, above) {
      let entry = clipboard;
      try { entry = JSON.parse(localStorage.getItem(CLIPBOARD_KEY) || "null") || entry; } catch (e) { /* private mode */ }
      const at = cells.indexOf(cell);
      if (!isObject(entry) || typeof entry.code !== "string" || at < 0) return;
      const own = typeof entry.id === "string" && entry.worksheet === o.user + "/" + o.worksheet
        && !cells.some((c) => c.cellId === entry.id);
      const pasted = add(Object.assign({type: entry.type, code: entry.code,
                                        outputs_hidden: entry.outputs_hidden === true},
                                       own ? {id: entry.id} : {}),
                         above ? at : at + 1, own && entry.ran === true);
      pasted.focus();
    }

    return {remove: remove, undelete: undelete, copy: copy, paste: paste};
  }
