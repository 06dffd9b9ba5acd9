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

  /** The language each kernel's code box names in its empty hint; another kernel's says
   * "Code" (a worksheet of bash, R or a backend of one's own said "Python code"). */
  const LANGUAGES = {python: "Python", python3: "Python", ir: "R", r: "R", bash: "Shell"};

  /** The hint an empty code box of `kernel` shows, unless its page gave one (placeholder). */
  function codeHint(options) {
    if (options.placeholder) return options.placeholder;
    const language = LANGUAGES[String(options.kernel || "python").toLowerCase()];
    return (language ? language + " code" : "Code") + "; Shift+Enter evaluates";
  }

  /** Whether Tab completes (as in Jupyter: right after a name or a dot, nothing selected,
   * in a code cell, with CodeMirror's show-hint addon loaded) rather than indents. */
  function completable(cm, cell) {
    if (cell.type !== "code" || typeof cm.showHint !== "function" || cm.somethingSelected()) {
      return false;
    }
    const at = cm.getCursor();
    return /[\w.]$/.test(cm.getLine(at.line).slice(0, at.ch));
  }

  /** Ask the session to complete the name before the cursor; one match is put in at once,
   * several are offered in show-hint's list. Nothing happens if the code changed meanwhile
   * or no completion came (HTTP; a worksheet with no session gets one first, see
   * channelstart.js). Jupyter counts the cursor in code points,
   * JavaScript strings in UTF-16 units. */
  function complete(cm, cell) {
    const code = cm.getValue();
    const at = cm.indexFromPos(cm.getCursor());
    cell.complete(code, Array.from(code.slice(0, at)).length).then((reply) => {
      if (!isObject(reply) || !Array.isArray(reply.matches) || cm.getValue() !== code
          || cm.indexFromPos(cm.getCursor()) !== at) return;
      const list = reply.matches.filter((m) => typeof m === "string");
      const from = unitsOf(code, reply.cursor_start), to = unitsOf(code, reply.cursor_end);
      if (!list.length || from === null || to === null || from > to) return;
      cm.showHint({completeSingle: true, hint: () => ({
        list: list, from: cm.posFromIndex(from), to: cm.posFromIndex(to)})});
    });
  }

  /** Whether Shift+Tab asks for help (as in Jupyter: right after a name, a dot or an
   * opening parenthesis, nothing selected, in a code cell) rather than dedents. */
  function inspectable(cm, cell) {
    if (cell.type !== "code" || cm.somethingSelected()) return false;
    const at = cm.getCursor();
    return /[\w.(]$/.test(cm.getLine(at.line).slice(0, at.ch));
  }

  /** Show the session's help on the name before the cursor (its signature and docstring,
   * the inspect_reply's text) in a box under the cursor, until the cursor moves, the code
   * changes, Escape or the editor loses the focus; nothing if no help came. */
  function inspect(cm, cell) {
    const code = cm.getValue();
    const at = cm.indexFromPos(cm.getCursor());
    // Right after "name(": the help of the name called (a session finds no name at "(").
    const asked = code[at - 1] === "(" ? at - 1 : at;
    cell.inspect(code, Array.from(code.slice(0, asked)).length).then((reply) => {
      const data = isObject(reply) && reply.found === true && isObject(reply.data) ? reply.data : {};
      const text = data["text/plain"];
      if (typeof text !== "string" || !text || cm.getValue() !== code
          || cm.indexFromPos(cm.getCursor()) !== at) return;
      closeHelp(cm);
      const box = el("pre", "cellbus-inspect");
      box.setAttribute("role", "tooltip");
      showAnsi(box, text.replace(/\n+$/, ""));
      cm.state.cellbusHelp = box;
      cm.addWidget(cm.getCursor(), box, true);
      const close = () => {
        closeHelp(cm);
        cm.off("cursorActivity", close);
        cm.off("blur", close);
      };
      cm.on("cursorActivity", close);
      cm.on("blur", close);
    });
  }

  function closeHelp(cm) {
    if (cm.state.cellbusHelp) cm.state.cellbusHelp.remove();
    cm.state.cellbusHelp = null;
  }

  /** The UTF-16 index of code point `n` of `text`, or null if there is no such point. */
  function unitsOf(text, n) {
    if (!Number.isInteger(n) || n < 0) return null;
    let units = 0;
    for (const ch of text) {
      if (n-- === 0) return units;
      units += ch.length;
    }
    return n === 0 ? units : null;
  }

  /** Put CodeMirror on `cell`'s textarea, which stays in the DOM (hidden) holding the code:
   * `cell.input.value` reads it, and a page that sets it and fires "input" sets the editor.
   * Tab after a name completes it (completable) and Shift+Tab shows its help (inspect),
   * elsewhere Tab and Shift+Tab indent and dedent by four spaces, Enter keeps the indentation (the
   * mode's: a level more after a colon), Shift+Enter and Ctrl+Enter evaluate, Alt+Enter
   * evaluates and asks for a cell below, Up on the first line and Down on the last go to
   * the cell above or below (a worksheet's), and Escape then Tab leaves the editor. Returns
   * the editor, or null without CodeMirror. */
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
        "Tab": (cm) => {
          if (completable(cm, cell)) complete(cm, cell);
          else cm.execCommand(cm.somethingSelected() ? "indentMore" : "insertSoftTab");
        },
        "Shift-Tab": (cm) => {
          if (inspectable(cm, cell)) inspect(cm, cell);
          else cm.execCommand("indentLess");
        },
        "Shift-Enter": run(true), "Ctrl-Enter": run(false), "Cmd-Enter": run(false),
        "Alt-Enter": () => cell._runAndInsert(),
        "Up": (cm) => leave(cm, -1), "Down": (cm) => leave(cm, 1),
      },
    });
    /** Up on the first line, Down on the last: the cell above or below, as in Jupyter. */
    function leave(cm, by) {
      const at = cm.getCursor();
      const edge = by < 0 ? at.line === cm.firstLine() : at.line === cm.lastLine();
      if (cm.somethingSelected() || !edge || !cell._leave(by, at.ch)) return CM.Pass;
      return undefined;
    }
    // On the editor's whole element, before CodeMirror sees the key: a key pressed just
    // after a click can reach CodeMirror's scroller while it hands focus to its input, and
    // an Escape lost there left the next Tab indenting (a keyboard trap). Whether the key
    // before was an Escape (or a command key that keeps them: K, J, a first D) is the cell's
    // tabLeaves, as for its plain textarea, so Escape then K hands it to the cell above.
    editor.getWrapperElement().addEventListener("keydown", (event) => {
      if (MODIFIERS.includes(event.key)) return;  // Escape, then Shift+M: the Shift is no key
      if (splitKey(event)) {
        event.preventDefault();  // CodeMirror leaves it, and so does the browser
        cell.tabLeaves = false;
        cell._split();
        return;
      }
      if (cell.tabLeaves && cell._commandKey(event)) {  // Escape then M, Y, A, B, Z, D, D ...
        cell.tabLeaves = Boolean(cell.commandHeld);
        return;
      }
      // No keyboard trap; Shift+Tab is the editor's still (help, a dedent), as when its
      // Shift's own keydown ended the Escape.
      if (event.key === "Tab" && cell.tabLeaves && !event.shiftKey) event.codemirrorIgnore = true;
      if (event.key === "Escape") closeHelp(editor);
      cell.tabLeaves = event.key === "Escape";
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

  /** Editors measured at once when a page loads; the rest as they come near the view. */
  const MEASURED_FIRST = 20;

  /** Lay out `editors`, made while out of the page (a worksheet's cells as it loads: made in
   * the page, each editor forced a layout of the page so far as it measured itself, and 200
   * cells took 1,486 layouts, 4 s of a 6.7 s load; out of it, an editor shows nothing until
   * measured): the first MEASURED_FIRST in one operation, the others when they come within
   * a screen of the view (an IntersectionObserver), so hundreds of cells lay out a few at a
   * time. */
  function measureEditors(editors) {
    const now = editors.slice(0, MEASURED_FIRST), later = editors.slice(MEASURED_FIRST);
    if (now.length) now[0].operation(() => now.forEach((e) => e.refresh()));
    if (!later.length) return;
    if (typeof IntersectionObserver !== "function") {
      later[0].operation(() => later.forEach((e) => e.refresh()));
      return;
    }
    const near = new IntersectionObserver((entries) => {
      const shown = entries.filter((entry) => entry.isIntersecting).map((entry) => entry.target);
      for (const node of shown) near.unobserve(node);
      const due = later.filter((e) => shown.includes(e.getWrapperElement()));
      if (due.length) due[0].operation(() => due.forEach((e) => e.refresh()));
    }, {rootMargin: "100% 0px"});
    for (const e of later) near.observe(e.getWrapperElement());
  }
