  // ---- TextView: a text block, however long ------------------------------------------------

  // A print loop can write a million lines: drawn whole, they made a page millions of px
  // tall that took minutes to lay out, and nothing else on it moved meanwhile. A text block
  // shows at most its first HEAD_LINES and last TAIL_LINES lines (and HEAD_CHARS, TAIL_CHARS
  // of them: one line can be long too), "N lines hidden" between them with buttons to show
  // all (drawn SHOW_CHUNK characters per animation frame) or download it; and it scrolls
  // in a box of its own past a height (cellbus.css). Taking in new text costs what it adds.
  // The text is kept as a terminal shows it (overwrite: a carriage return replaces its line),
  // and that is what Show all and Download give.
  const HEAD_LINES = 200;
  const TAIL_LINES = 200;
  const HEAD_CHARS = 32768;
  const TAIL_CHARS = 32768;
  const SHOW_CHUNK = 262144;

  /** `shown` (text as a terminal shows it) with the next `chunk` of a stream taken in; `cr`:
   * the stream's last character so far was a carriage return not yet known to be half of a
   * "\r\n". A carriage return goes back to the start of its line and what follows replaces
   * the line, as the classic Jupyter Notebook shows it: a progress bar ("\r50%", tqdm,
   * IPython's clear_output outside a kernel) shows its last state, and takes no more room
   * than that. Returns {text, from: where `text` first differs from `shown` (the start of
   * its last line if that was replaced, else its end), cr: whether `chunk` ended in one}. */
  function overwrite(shown, chunk, cr) {
    let s = (cr ? "\r" : "") + chunk;
    const pending = s.endsWith("\r");
    if (pending) s = s.replace(/\r+$/, "");
    s = s.replace(/\r+\n/g, "\n");
    if (!s.includes("\r")) return {text: shown + s, from: shown.length, cr: pending};
    const after = (line) => line.slice(line.lastIndexOf("\r") + 1);
    const lines = s.split("\n");
    const from = lines[0].includes("\r") ? shown.lastIndexOf("\n") + 1 : shown.length;
    lines[0] = lines[0].includes("\r") ? after(lines[0]) : lines[0];
    return {text: shown.slice(0, from) + lines.map(after).join("\n"), from: from, cr: pending};
  }

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
      this.raw = "";        // the block's text as taken in
      this.cr = false;      // it ended in a carriage return (see overwrite)
      this.text = "";       // that text as a terminal shows it (see overwrite)
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
      const raw = block.content;
      if (block.stream !== this.stream || typeof raw !== "string" || raw.length < this.raw.length
          || (block !== this.block && !raw.startsWith(this.raw))) return false;
      this.block = block;
      const old = this.text;
      const taken = overwrite(old, raw.slice(this.raw.length), this.cr);
      const text = taken.text, from = taken.from;
      this.raw = raw;
      this.cr = taken.cr;
      this.text = text;
      // (from is where its last line starts if that line was replaced: no newline after it)
      this.lines += countLines(text, from, text.length) - countLines(old, from, old.length);
      if (this.drawn >= 0) {
        this._truncate(from);
        this._drawMore();
      } else if (this.cut < 0 && this.lines <= HEAD_LINES + TAIL_LINES
                 && text.length <= HEAD_CHARS + TAIL_CHARS) {
        if (from < old.length) this._rewrite(from);
        else this._append(text.slice(from));
      } else if (this.cut >= 0 && from < this.cut) {
        this._redraw();  // the line the head ends in was replaced
      } else {
        this._capped();
      }
      return true;
    }

    /** Under the cap: the last line, replaced from `from` on, is drawn again. */
    _rewrite(from) {
      if (this.colours) {  // coloured again from the start, with a converter of no colour yet
        this.ansi = newConverter(this.ansi.constructor);
        this.colours.innerHTML = this.ansi.ansi_to_html(this.text);
        return;
      }
      const data = this.head.data;
      const at = data.lastIndexOf("\n") + 1;  // the same line: no escape holds a newline
      this.head.deleteData(at, data.length - at);
      this._append(this.text.slice(from));
    }

    /** Everything drawn again from the text (its head changed). */
    _redraw() {
      this.node.textContent = "";
      this.node.classList.remove("cellbus-long");
      this.head = document.createTextNode("");
      this.node.appendChild(this.head);
      this.colours = this.bar = this.tail = null;
      this.cut = -1;
      if (this.lines <= HEAD_LINES + TAIL_LINES && this.text.length <= HEAD_CHARS + TAIL_CHARS) {
        this.ansiAsked = false;
        this._append(this.text);
      } else {
        this._capped();
      }
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
      this.pieces = [];  // where in the text each text node drawn starts
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
        if (end <= this.drawn) return;
        this.pieces.push(this.drawn);
        this.node.appendChild(document.createTextNode(stripAnsi(this.text.slice(this.drawn, end))));
        this.drawn = end;
        if (end < this.text.length) this._drawMore();
      });
    }

    /** Showing all: what was drawn from `from` on (a line replaced) goes. */
    _truncate(from) {
      if (from >= this.drawn) return;
      while (this.pieces.length && this.pieces[this.pieces.length - 1] >= from) {
        this.pieces.pop();
        this.node.lastChild.remove();
      }
      if (this.pieces.length) {
        const start = this.pieces[this.pieces.length - 1];
        this.node.lastChild.data = stripAnsi(this.text.slice(start, from));
      }
      this.drawn = from;
    }
  }
