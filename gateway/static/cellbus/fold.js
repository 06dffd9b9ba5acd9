  // ---- Fold: mirrors protocol/fold.py's CellOutput ------------------------------------------

  /** `blocks`, each interact block with its nested output (`inner`: id -> its Fold). */
  function withInner(blocks, inner) {
    const out = {};
    for (const [id, block] of Object.entries(blocks)) {
      out[id] = inner[id] ? Object.assign({}, block, {output: inner[id].view()}) : block;
    }
    return out;
  }

  class Fold {
    constructor() {
      this.seq = 0;          // the last seq applied
      this.blocks = {};      // id -> block, in creation order
      this.inner = {};       // interact block id -> its nested Fold
      this.order = 0;
      this.open = null;      // id of the open text or interact block
      this.pendingClear = false;
    }

    /** The blocks, interact blocks with their nested output; the same shape /update gives. */
    view() {
      return withInner(this.blocks, this.inner);
    }

    /** Fold one message in; true if anything visible changed. Never throws on bad input. */
    apply(seq, msg) {
      if (!Number.isInteger(seq) || seq <= this.seq || !isObject(msg)) return false;
      let type = msg.msg_type;
      if (typeof type !== "string") type = isObject(msg.header) ? msg.header.msg_type : null;
      if (typeof type !== "string" || !isObject(msg.content)) {
        this.seq = seq;
        return false;
      }
      return this._apply(seq, type, msg.content, msg);
    }

    _apply(seq, type, content, msg) {
      this.seq = Math.max(this.seq, seq);
      return this._dispatch(seq, type, content, msg);
    }

    _dispatch(seq, type, content, msg) {
      if (type === "execute_reply" || (type === "status" && content.execution_state === "idle")) {
        return this._close(seq);
      }
      const inner = this._openInteract();
      if (inner) {
        if (type === "interact_end" && !inner._openInteract()) return this._close(seq);
        const changed = inner._apply(seq, type, content, msg);
        if (changed) this.blocks[this.open].seq = seq;
        return changed;
      }
      switch (type) {
        case "stream": return this._stream(seq, content);
        case "display_data":
        case "update_display_data": // shown as one more display, as protocol/fold.py does
        case "execute_result": {
          const made = this._rich(seq, content, type === "execute_result" ? "result" : "display", msg);
          return made !== null && this._add(seq, made[0], made[1]);
        }
        case "error": return this._error(seq, content);
        case "clear_output":
          if (typeof content.wait !== "boolean" && content.wait !== undefined) return false;
          if (content.wait) {
            this.pendingClear = true;
            return false;
          }
          return this._clear(seq);
        case "interact_start": return this._interactStart(seq, content);
        case "input_request": return this._inputRequest(seq, content);
        default: return false;
      }
    }

    _stream(seq, content) {
      const name = content.name, text = content.text;
      if (!STREAM_NAMES.includes(name) || typeof text !== "string" || !text) return false;
      this._clearIfPending(seq);
      const block = this.open !== null ? this.blocks[this.open] : null;
      if (block && block.type === "text" && block.stream === name) {
        block.content += text;
        block.seq = seq;
        return true;
      }
      return this._add(seq, name, {type: "text", stream: name, content: text}, "open");
    }

    _rich(seq, content, kind, msg) {
      const data = content.data;
      if (!isObject(data)) return null;
      const ref = data[FILE_MIME];
      if (isObject(ref) && typeof ref.name === "string" && Number.isInteger(ref.size)
          && typeof ref.mime === "string") {
        const block = {type: "file", name: ref.name, size: ref.size, mime: ref.mime};
        const facts = cellbusFacts(msg) || {};
        if (ref.too_large === true) block.too_large = true;
        else if (typeof facts.url === "string") block.url = facts.url;
        return ["file", block];
      }
      for (const mime of IMAGE_MIMES) {
        if (typeof data[mime] === "string") {
          return ["image", {type: "image", mime: mime, data: data[mime]}];
        }
      }
      if (typeof data["text/html"] === "string") {
        return ["html", {type: "html", content: data["text/html"]}];
      }
      for (const mime of TEXT_MIMES) {
        if (typeof data[mime] === "string") {
          const block = {type: "text", stream: kind, content: data[mime]};
          if (mime !== "text/plain") block.mime = mime;
          // LaTeX that KaTeX cannot show falls back to the object's repr (math.js).
          if (mime === "text/latex" && typeof data["text/plain"] === "string") {
            block.plain = data["text/plain"];
          }
          return ["text", block];
        }
      }
      return null;
    }

    _error(seq, content) {
      const tb = content.traceback === undefined ? [] : content.traceback;
      if (typeof content.ename !== "string" || typeof content.evalue !== "string"
          || !Array.isArray(tb) || !tb.every((line) => typeof line === "string")) return false;
      return this._add(seq, "error", {type: "error", ename: content.ename, evalue: content.evalue,
                                      traceback: tb.slice()});
    }

    /** Show `inner` (a re-run's output, folded by the caller) as the output of the interact
     * `interactId`; later changes to `inner` show through. False if there is no such interact.
     * Mirrors CellOutput.replace_interact_output. */
    replaceInteractOutput(interactId, seq, inner) {
      const ids = Object.keys(this.blocks);
      for (let i = ids.length - 1; i >= 0; i--) {
        const block = this.blocks[ids[i]];
        if (block.type === "interact" && block.interact_id === interactId) {
          this.inner[ids[i]] = inner;
          block.seq = Math.max(block.seq, seq);
          return true;
        }
      }
      return Object.values(this.inner).some((f) => f.replaceInteractOutput(interactId, seq, inner));
    }

    /** Whether an interact `interactId` is among the blocks (nested ones too). */
    hasInteract(interactId) {
      for (const block of Object.values(this.blocks)) {
        if (block.type === "interact" && block.interact_id === interactId) return true;
      }
      return Object.values(this.inner).some((f) => f.hasInteract(interactId));
    }

    _interactStart(seq, content) {
      const controls = content.controls === undefined ? {} : content.controls;
      if (typeof content.interact_id !== "string" || !isObject(controls)) return false;
      const layout = content.layout === undefined ? Object.keys(controls) : content.layout;
      if (!Array.isArray(layout)) return false;
      this._add(seq, "interact", {type: "interact", interact_id: content.interact_id,
                                  controls: Object.assign({}, controls), layout: layout.slice(),
                                  auto_update: content.auto_update !== false},
                "open");
      this.inner["interact_" + (this.order - 1)] = new Fold();
      return true;
    }

    /** A prompt (input(), getpass()): open while the session waits for the answer. */
    _inputRequest(seq, content) {
      const prompt = content.prompt === undefined ? "" : content.prompt;
      const password = content.password === undefined ? false : content.password;
      if (typeof prompt !== "string" || typeof password !== "boolean") return false;
      return this._add(seq, "input", {type: "input", prompt: prompt, password: password}, "open");
    }

    _openInteract() {
      return this.open !== null && this.inner[this.open] ? this.inner[this.open] : null;
    }

    _add(seq, prefix, block, state) {
      this._clearIfPending(seq);
      this._close(seq);
      const id = prefix + "_" + this.order;
      this.blocks[id] = Object.assign({}, block,
                                      {order: this.order, state: state || "closed", seq: seq});
      this.order += 1;
      if (state === "open") this.open = id;
      return true;
    }

    _close(seq) {
      if (this.open === null) return false;
      const inner = this._openInteract();
      if (inner) inner._close(seq);
      const block = this.blocks[this.open];
      block.state = "closed";
      block.seq = seq;
      this.open = null;
      return true;
    }

    _clearIfPending(seq) {
      if (this.pendingClear) this._clear(seq);
    }

    _clear() {
      this.pendingClear = false;
      if (Object.keys(this.blocks).length === 0) return false;
      this.blocks = {};
      this.inner = {};
      this.open = null;
      return true;
    }
  }

  /** Output blocks as the store gave them (after a reload), with what an interact's runs
   * need of a Fold: the same hasInteract, replaceInteractOutput and view. */
  class StoredBlocks {
    constructor(blocks) {
      this.blocks = Object.assign({}, blocks);
      this.inner = {};  // interact block id -> the Fold of its latest run
    }

    view() {
      return withInner(this.blocks, this.inner);
    }

    hasInteract(interactId) {
      return this._find(interactId) !== null;
    }

    replaceInteractOutput(interactId, seq, inner) {
      const id = this._find(interactId);
      if (id === null) return false;
      this.inner[id] = inner;
      const block = this.blocks[id];
      this.blocks[id] = Object.assign({}, block, {seq: Math.max(block.seq || 0, seq)});
      return true;
    }

    _find(interactId) {
      for (const [id, block] of Object.entries(this.blocks)) {
        if (block.type === "interact" && block.interact_id === interactId) return id;
      }
      return null;
    }
  }
