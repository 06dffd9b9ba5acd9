  // ---- Channel: what the gateway sends, to the cells it is for ----------------------------

  // Methods of Channel (channel.js, which keeps the socket's life and what goes out). In
  // come replies to this page's requests (keyed by the request's msg_id, its
  // parent_header) and the output of the worksheets it subscribed to (each seq once, in
  // order; a new session starts again at seq 1): a run's output goes to the cell that asked
  // for it, an interact's to every cell showing that interact, a completion's reply to the
  // Promise that waits for it, and the broker's notes on the worksheet's session (ended, idle)
  // to the page as events. Output may come before its request's reply: both are keyed by the
  // request's msg_id.
  const NOTES_EVERY = 2000;        // ms between asks for session notes over HTTP (a tab shown:
  const NOTES_HIDDEN = 5000;       // another client's run shows here that soon), hidden
  const NOTES_RETRY_MAX = 60000;   // ms between them at most, doubling after failures
  // What a run says, by which another page's run in a cell is followed (Channel._follow).
  const FOLLOWED = new Set(["status", "execute_input", "stream", "display_data", "execute_result",
                            "update_display_data", "clear_output", "error", "input_request",
                            "execute_reply"]);
  // A Jupyter kernel's start, a run no client asked for (gateway/jupyter/model.py): no page
  // shows it, nor a Keep's runs of nothing (KEEPALIVE_CELL).
  const KERNEL_START_CELL = "kernel-start";

  Object.assign(Channel.prototype, {
    _receive(raw) {
      let msg;
      try {
        msg = JSON.parse(raw);
      } catch (e) {
        return;
      }
      if (!isObject(msg) || !isObject(msg.content)) return;
      const type = msg.msg_type || (isObject(msg.header) ? msg.header.msg_type : null);
      const parent = isObject(msg.parent_header) ? msg.parent_header.msg_id : null;
      const facts = cellbusFacts(msg);
      if (facts && Number.isInteger(facts.seq)) {
        this._output(msg, facts, parent);
      } else if (type === "subscribe_reply") {
        this._subscribed(msg.content, parent);
      } else if (type === "output_lost") {  // (a socket open across a store's restore)
        this._lost(null, msg.content);
      } else if (parent && this.requests.has(parent)) {
        this._replied(this.requests.get(parent), parent, type, msg.content);
      }
    },

    _subscribed(content, parent) {
      for (const sub of this.subs.values()) {
        if (sub.pending !== parent) continue;
        sub.pending = null;
        if (!content.ok) {  // the broker is away: ask again soon
          const ws = this.ws;
          setTimeout(() => {
            if (this.ws === ws && ws.readyState === WebSocket.OPEN) this._subscribe(sub);
          }, 2000);
          return;
        }
        this._noteLimits(content);
        this._lost(sub, content.lost);
        if (content.session && content.session !== sub.session) this._newSession(sub, content.session);
        if (Number.isInteger(content.seq)) sub.last = Math.max(sub.last, content.seq);
        this._adoptPrompts(sub);
        sub.live = true;  // from now on, a replay (after a reconnect) is of what it missed
      }
      if (!this.up) {
        if (this.everUp) setTimeout(() => this._eachCell((cell) => cell._resync()), RESYNC_DELAY);
        this.up = this.everUp = true;
        this.failures = 0;
        this._tellCells(true);
      }
    },

    /** The store, restored from an older copy (a backup), lacks output of the worksheet's
     * session that this page had seen (`lost`: {session, through, why}, as a subscription's
     * reply, an output_lost message, /session and a cell's /update say it; `sub`: its
     * worksheet, else the one of that session): the page is told (cellbus:lost), since the
     * output it shows from after the backup point will not come back on a reload. */
    _lost(sub, lost) {
      if (!isObject(lost)) return;
      const of = sub || Array.from(this.subs.values()).find((s) => s.session === lost.session);
      const cell = of ? of.cells.values().next().value : null;
      if (cell) cell._event("lost", {session: lost.session, through: lost.through});
    },

    /** While a subscription replays, note the prompts of runs this page did not start that
     * still wait (nothing of the run came after its prompt). */
    _notePrompt(sub, msg, facts, parent) {
      if (!sub.prompts) sub.prompts = new Map();
      if (msgTypeOf(msg) === "input_request" && sub.pending) {
        sub.prompts.set(parent, {seq: facts.seq, msg: msg, cellId: String(facts.cell_id)});
      } else {
        sub.prompts.delete(parent);
      }
    },

    /** After a replay (a page that reloaded): a cell with no run of its own takes over a run
     * of its that waits on a prompt, so the box shows again and the rest of the run follows. */
    _adoptPrompts(sub) {
      const prompts = sub.prompts || new Map();
      sub.prompts = new Map();
      for (const [parent, prompt] of prompts) {
        for (const cell of sub.cells) {
          if (cell.cellId !== prompt.cellId || !cell.adoptRun(parent)) continue;
          this.requests.set(parent, {cell: cell, msg: null, kind: "execute_request", sent: true,
                                     accepted: true});
          cell._message(prompt.seq, prompt.msg);
          break;
        }
      }
    },

    /** The worksheet has another session (it starts at seq 1): a later one means the one
     * before ended (idle, restarted, or its device went away), and its variables with it. */
    _newSession(sub, session) {
      const previous = sub.session;
      sub.session = session;
      sub.last = 0;
      const cell = sub.cells.values().next().value;  // one event for the worksheet
      if (previous && cell) cell._event("session", {session, previous});
    },

    /** What the broker says of the worksheet's session (broker/closures.py): it ended, and
     * why; or it went idle, and its device ends it after `idle_timeout` s (from the message's
     * date, stamped by the device's clock: one ahead of this page's would put it in the
     * future, and the warning after the end, so it is taken as now at the latest). One event
     * for the worksheet. */
    _sessionNote(sub, msg, facts) {
      const cell = sub.cells.values().next().value;
      if (!cell) return;
      if (msgTypeOf(msg) === "session_closed") {
        cell._event("closed", {reason: String(msg.content.reason || "ended")});
      } else if (typeof facts.idle_timeout === "number" && isObject(msg.header)) {
        const since = Date.parse(msg.header.date);
        cell._event("idle", {since: isNaN(since) ? Date.now() : Math.min(since, Date.now()),
                             timeout: facts.idle_timeout});
      }
    },

    /** Without a WebSocket: the worksheet's session notes (its end, its idle timeout) from
     * GET /home/U/W/session (gateway/sessionnotes.py), as a subscription brings them: asked
     * every NOTES_EVERY and as soon as a run of the worksheet ended (pokeNotes: the idle
     * status that ends it carries the idle timeout), each answer read at once (no request
     * stays open: a long poll held for good would keep one of the browser's few connections
     * to the gateway); until the worksheet has no cell on the page. */
    async _pollNotes(sub) {
      if (sub.polling) return;
      sub.polling = true;
      let delay = NOTES_EVERY;
      const base = this.server + "home/" + [sub.user, sub.worksheet].map(encodeURIComponent)
        .join("/") + "/session";
      while (sub.cells.size) {
        await whenOnline();
        const url = base + "?since=" + sub.last
          + (sub.session ? "&session=" + encodeURIComponent(sub.session) : "");
        const r = await this.poll.ask(url, {cache: "no-store"}).catch(() => null);
        const body = r && r.ok && isObject(r.body) ? r.body : null;
        const every = document.hidden ? NOTES_HIDDEN : NOTES_EVERY;
        delay = body ? every : Math.min(Math.max(delay, every) * 2, NOTES_RETRY_MAX);
        if (body) this._lost(sub, body.lost);
        if (body && typeof body.session === "string" && body.session !== sub.session) {
          this._newSession(sub, body.session);
        }
        const starts = [];  // the runs started (their execute_input)
        for (const msg of body && Array.isArray(body.messages) ? body.messages : []) {
          const facts = isObject(msg) && isObject(msg.content) ? cellbusFacts(msg) : null;
          if (!facts || !Number.isInteger(facts.seq) || facts.seq <= sub.last) continue;
          sub.last = facts.seq;
          if (msgTypeOf(msg) === "execute_input") starts.push({msg: msg, facts: facts});
          else this._sessionNote(sub, msg, facts);
        }
        if (body && Number.isInteger(body.seq)) sub.last = Math.max(sub.last, body.seq);
        if (sub.live) this._followPolled(sub, starts);
        if (body && body.more) continue;
        if (body) sub.live = true;  // what comes next is new
        await new Promise((resolve) => {
          sub.poke = resolve;
          setTimeout(resolve, delay);
        });
        sub.poke = null;
      }
      sub.polling = false;
    },

    /** A run of `cell`'s worksheet ended over HTTP: its session notes are asked now. */
    pokeNotes(cell) {
      const sub = this.subs.get(cell.user + "/" + cell.worksheet);
      if (sub && sub.poke) sub.poke();
    },

    _replied(record, msgId, type, content) {
      if (record.noSession && content.http_status === 409) {  // channelstart.js
        this.requests.delete(msgId);
        record.noSession();
      } else if (content.ok) {
        record.accepted = true;
        if (record.kind === "execute_request") record.cell._accepted(msgId, content.status);
        else if (!record.replyType) this.requests.delete(msgId);  // (a query waits for its reply)
      } else if (content.http_status === 409) {  // sent twice; the first one got through
        record.accepted = true;
      } else {
        this._fail(record, msgId, content.error || "refused");
      }
    },

    /** A run another page (another tab, browser or client) started in a cell of this
     * worksheet, as JupyterLab's collaboration shows it: the cell (added by the worksheet
     * if this page has no cell of that id: cellbus:followed) shows its code and its output
     * as they come, as if it had run it here, unless it is busy with a run of its own.
     * Not while the page's first replay runs (the cells show the store's runs from
     * /update), nor for a Keep's runs or a completion's. True if the message was taken. */
    _follow(sub, msg, facts, parent) {
      const cell = this._followCell(sub, msg, facts, parent);
      if (!cell) return false;
      this.requests.set(parent, {cell: cell, msg: null, kind: "execute_request", sent: true,
                                 accepted: true, followed: true});
      cell._message(facts.seq, msg);
      return true;
    },

    /** The cell that shows run `parent` of another client from `msg` on (see _follow),
     * told to the page (cellbus:followed) and showing the run; or null. */
    _followCell(sub, msg, facts, parent) {
      const id = facts.cell_id === undefined || facts.cell_id === null ? null : String(facts.cell_id);
      if (!sub.live || id === null || id === KEEPALIVE_CELL || id === KERNEL_START_CELL
          || !FOLLOWED.has(msgTypeOf(msg))
          || typeof facts.interact_id === "string" || isObject(facts.reply_to)) return null;
      const find = () => Array.from(sub.cells).find((c) => c.cellId === id);
      let cell = find();
      if (cell && (cell.busy || cell.requestId === parent)) return null;  // its own run
      if (cell && cell.restoring) {  // the store's answer shows it whole, or it follows then
        const code = msgTypeOf(msg) === "execute_input" ? msg.content.code : null;
        if (!cell.missedRun || cell.missedRun.parent !== parent) cell.missedRun = {parent, code};
        else if (code !== null) cell.missedRun.code = code;
        return null;
      }
      // The cell, or if the page has none of that id, one of the worksheet's cells, tells
      // the page (which adds it).
      const teller = cell || sub.cells.values().next().value;
      if (!teller) return null;
      const code = msgTypeOf(msg) === "execute_input" && typeof msg.content.code === "string"
        ? msg.content.code : null;
      teller._event("followed", {cellId: id, code: code});
      cell = find();
      return cell && cell.followRun(parent) ? cell : null;
    },

    /** Over HTTP, the runs that started in an answer of _pollNotes (their execute_input):
     * the last of each cell that this page did not send is followed from the cell's
     * /update until it ends (PollTransport.follow), as the WebSocket's feed has a run of
     * another tab or client followed (_follow); not those of the first answer, a replay of
     * what the cells show from the store. */
    _followPolled(sub, starts) {
      const last = new Map();
      for (const start of starts) last.set(String(start.facts.cell_id), start);
      for (const {msg, facts} of last.values()) {
        const parent = isObject(msg.parent_header) ? msg.parent_header.msg_id : null;
        if (typeof parent !== "string" || this.poll.mine.has(parent)) continue;
        const cell = this._followCell(sub, msg, facts, parent);
        if (cell) this.poll.follow(cell, parent, null, true);
      }
    },

    _output(msg, facts, parent) {
      const sub = this.subs.get(facts.user + "/" + facts.worksheet);
      if (!sub) return;
      if (facts.session !== sub.session) this._newSession(sub, facts.session);
      if (facts.seq <= sub.last) return;  // seen already
      sub.last = facts.seq;
      this._sessionNote(sub, msg, facts);
      // What a session says about a client's query names the client's request in
      // metadata.cellbus.reply_to (its parent is the broker's message to the session).
      const asker = isObject(facts.reply_to) ? facts.reply_to.msg_id : null;
      const query = typeof asker === "string" ? this.requests.get(asker) : null;
      if (query && query.replyType) {  // a completion's, an inspection's (channelstart.js)
        if (msgTypeOf(msg) === query.replyType) {
          this.requests.delete(asker);
          query.resolve(msg.content);
        }
        return;
      }
      const record = parent ? this.requests.get(parent) : null;
      if (record && record.kind === "execute_request") {
        if (record.cell.requestId !== parent) return;
        if (record.followed && msgTypeOf(msg) === "execute_input") {
          record.cell._event("followed", {cellId: record.cell.cellId, code: msg.content.code});
        }
        record.cell._message(facts.seq, msg);
        return;
      }
      if (!record && parent && this._follow(sub, msg, facts, parent)) return;
      if (!record && parent) this._notePrompt(sub, msg, facts, parent);
      // A run of an interact, asked for by this page or by another one: every cell showing
      // that interact shows its output.
      const interactId = typeof facts.interact_id === "string" ? facts.interact_id
        : record && record.kind === "interact_request" ? record.msg.content.interact_id : null;
      if (interactId === null) return;
      for (const cell of sub.cells) {
        if (cell.cellId === String(facts.cell_id) || (record && record.cell === cell)) {
          cell._interactMessage(facts.seq, msg, parent, interactId);
        }
      }
      if (record && msgTypeOf(msg) === "interact_reply") this.requests.delete(parent);
    },
  });
