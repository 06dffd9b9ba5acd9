  // ---- Channel: one WebSocket per gateway, shared by every cell of the page ---------------

  const RECONNECT_MIN = 250;     // ms, doubled per failed attempt
  const RECONNECT_MAX = 3000;
  const CONNECT_TIMEOUT = 5000;  // ms for a socket to open
  const FAILURES_BEFORE_POLLING = 2;
  const RESYNC_DELAY = 5000;     // ms after a reconnect before a running cell checks /update
  const COMPLETE_TIMEOUT = 5000; // ms a completion may take (a running cell holds it up)
  // The gateway closes a socket that left too much output unread with this code: connect
  // again and resume from the last seq (the store has it all), after a pause that doubles
  // with each such close in a row, so a slow client does not come back into the same flood.
  const TOO_SLOW = 4008;
  const SLOW_RECONNECT_MIN = 1000;   // ms
  const SLOW_RECONNECT_MAX = 30000;
  const SLOW_FORGET = 60000;         // ms a socket lasts for earlier slow closes not to count

  class Channel {
    constructor(server, token) {
      this.server = server;
      this.wsUrl = server.replace(/^http/, "ws") + "ws"
        + (token ? "?token=" + encodeURIComponent(token) : "");  // no headers on a WebSocket
      this.mode = window.WebSocket ? "websocket" : "poll";
      this.ws = null;
      this.up = false;          // the current socket has subscribed
      this.everUp = false;      // some socket has subscribed, so WebSocket works here
      this.failures = 0;        // sockets in a row that closed before any answer
      this.slowCloses = 0;      // sockets in a row the gateway closed as too slow (TOO_SLOW)
      this.subs = new Map();    // "user/worksheet" -> {user, worksheet, session, last, cells}
      this.requests = new Map();  // msg_id -> {cell, header, msg, sent, accepted, kind}
      this.clientSession = newId();
      this.maxMessage = this.maxInput = null;  // the gateway's limits (channelsizes.js)
      this.timer = null;
      this.poll = new PollTransport(server, token);  // once no WebSocket gets through
      window.addEventListener("online", () => this._reconnectSoon(0));
    }

    register(cell) {
      const key = cell.user + "/" + cell.worksheet;
      let sub = this.subs.get(key);
      if (!sub) {
        sub = {user: cell.user, worksheet: cell.worksheet, session: null, last: 0, cells: new Set()};
        this.subs.set(key, sub);
        if (this.ws && this.ws.readyState === WebSocket.OPEN) this._subscribe(sub);
      }
      sub.cells.add(cell);
      if (this.mode === "websocket" && !this.ws && this.timer === null) this._connect();
    }

    unregister(cell) {
      const sub = this.subs.get(cell.user + "/" + cell.worksheet);
      if (sub) sub.cells.delete(cell);
    }

    get connected() {
      return this.mode === "poll" || this.up;
    }

    /** Evaluate `code` in `cell`: the request's msg_id, or null when it is known only later
     * (over HTTP: then cell._accepted names it). */
    evaluate(cell, code) {
      const content = {code: code};
      if (cell.options.kernel) content.kernel = cell.options.kernel;
      const msgId = this.request(cell, "execute_request", content);
      return msgId !== null ? msgId : this.poll.evaluate(cell, code);
    }

    interrupt(cell) {
      if (this.request(cell, "interrupt_request", {}) === null) this.poll.interrupt(cell);
    }

    interact(cell, content) {
      if (this.request(cell, "interact_request", content) === null) this.poll.interact(cell, content);
    }

    /** The worksheet's next request gets a fresh session (its variables are gone). */
    restart(cell) {
      if (this.request(cell, "restart_request", {}) === null) this.poll.restart(cell);
    }

    /** Show request `msgId` of `cell` (sent before this page loaded) until it ends, from
     * `doc`, its /update document as shown. Over HTTP in either mode: this socket's replay
     * may have passed that request's messages before the page knew the request. */
    follow(cell, msgId, doc) {
      this.poll.follow(cell, msgId, doc);
    }

    /** The cell's /update document after `since` (waiting up to `wait` s), or null. */
    document(cell, since, wait) {
      return this.poll.document(cell, since, wait);
    }

    /** The cell's URL for `action` (evaluate, update, restart...). */
    url(cell, action) {
      return this.poll.url(cell, action);
    }

    /** fetch() with the token, its answer read whole (PollTransport.ask). */
    ask(url, init) {
      return this.poll.ask(url, init);
    }

    /** Send an execute (interrupt, interact) request for `cell`; returns the request's msg_id,
     * or null when the page uses HTTP instead (the cell then does it itself). */
    request(cell, msgType, content) {
      if (this.mode === "poll") return null;
      if (msgType === "interact_request") {  // a newer state makes unsent older ones moot
        for (const [msgId, record] of this.requests) {
          if (record.kind === msgType && !record.sent && record.cell === cell
              && record.msg.content.interact_id === content.interact_id) {
            this.requests.delete(msgId);
          }
        }
      }
      const header = {msg_id: newId(), msg_type: msgType, session: this.clientSession,
                      username: cell.user, date: new Date().toISOString(),
                      version: PROTOCOL_VERSION};
      const address = {user: cell.user, worksheet: cell.worksheet, cell_id: cell.cellId};
      const msg = {header: header, parent_header: {}, content: content,
                   metadata: {cellbus: address}};
      const record = {cell: cell, msg: msg, kind: msgType, sent: false, accepted: false};
      this.requests.set(header.msg_id, record);
      this._send(record);
      return header.msg_id;
    }

    forget(msgId) {
      this.requests.delete(msgId);
    }

    _send(record) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        const text = JSON.stringify(record.msg);
        if (this._tooBig(text)) return this._failSoon(record);
        this.ws.send(text);
        record.sent = true;
        record.ws = this.ws;
        record.length = text.length;
      }
    }

    _subscribe(sub) {
      const header = {msg_id: newId(), msg_type: "subscribe_request", session: this.clientSession,
                      username: sub.user, date: new Date().toISOString(), version: PROTOCOL_VERSION};
      const content = {user: sub.user, worksheet: sub.worksheet, since: sub.last};
      if (sub.session) content.session = sub.session;
      sub.pending = header.msg_id;
      this.ws.send(JSON.stringify({header: header, parent_header: {}, metadata: {}, content: content}));
    }

    _connect() {
      this.timer = null;
      let ws;
      try {
        ws = new WebSocket(this.wsUrl);
      } catch (e) {
        this._closed(null, false);
        return;
      }
      this.ws = ws;
      this.up = false;
      let answered = false;
      const guard = setTimeout(() => ws.close(), CONNECT_TIMEOUT);
      ws.onopen = () => {
        clearTimeout(guard);
        ws.openedAt = Date.now();
        for (const sub of this.subs.values()) this._subscribe(sub);
        this._resend();
      };
      ws.onmessage = (event) => {
        answered = true;
        this._receive(event.data);
      };
      ws.onclose = (event) => {
        clearTimeout(guard);
        if (this.ws !== ws) return;
        this._closedFor(ws, event.code);
        this._closed(ws, answered, event.code);
      };
    }

    _closed(ws, answered, code) {
      this.ws = null;
      const wasUp = this.up;
      this.up = false;
      this.failures = answered ? 0 : this.failures + 1;
      for (const record of this.requests.values()) {
        if (!record.accepted && record.sent) record.unsure = true;  // did it get through?
        record.sent = false;
      }
      if (!this.everUp && this.failures >= FAILURES_BEFORE_POLLING) {
        this._fallBack();
        return;
      }
      if (wasUp) this._tellCells(false);
      this._reconnectSoon(this._backoff(ws, code));
    }

    /** ms before the next socket: doubling per failure, and from a longer start after the
     * gateway closed a socket as too slow. */
    _backoff(ws, code) {
      if (code !== TOO_SLOW) {
        this.slowCloses = 0;
        return Math.min(RECONNECT_MAX, RECONNECT_MIN * 2 ** Math.max(0, this.failures - 1));
      }
      const lasted = ws && ws.openedAt ? Date.now() - ws.openedAt : 0;
      this.slowCloses = lasted > SLOW_FORGET ? 1 : this.slowCloses + 1;
      return Math.min(SLOW_RECONNECT_MAX, SLOW_RECONNECT_MIN * 2 ** (this.slowCloses - 1));
    }

    _reconnectSoon(delay) {
      if (this.mode !== "websocket" || this.ws) return;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = setTimeout(() => this._connect(), delay * (0.75 + Math.random() / 2));
    }

    /** No WebSocket gets through: every cell uses HTTP from now on. */
    _fallBack() {
      this.mode = "poll";
      const waiting = Array.from(this.requests.entries());
      this.requests.clear();
      for (const [msgId, record] of waiting) {
        if (record.kind === "execute_request" && record.cell.requestId === msgId) {
          record.cell.requestId = null;
          this.poll.evaluate(record.cell, record.msg.content.code);
        } else if (record.kind === "interact_request" && !record.accepted) {
          this.poll.interact(record.cell, record.msg.content);  // they go one after the other
        }
      }
      this._tellCells(true);
    }

    /** After a reconnect: requests that were sent but not confirmed are looked up before
     * they are sent again, so that none runs twice. */
    async _resend() {
      for (const [msgId, record] of this.requests) {
        if (record.accepted || record.sent) continue;
        if (record.unsure && record.kind === "execute_request") {
          const doc = await this.poll.document(record.cell, 0);
          if (this.requests.get(msgId) !== record) continue;
          if (doc && doc.request === msgId) {
            record.accepted = true;
            record.cell._accepted(msgId, doc.status);
            continue;
          }
        }
        // An interrupt: let it go. (An interact request is sent again: one that got through
        // already is answered 409, or skipped as stale by its state.)
        if (record.unsure && record.kind === "interrupt_request") {
          this.requests.delete(msgId);
          continue;
        }
        record.unsure = false;
        this._send(record);
      }
    }

    _eachCell(f) {
      for (const sub of this.subs.values()) for (const cell of sub.cells) f(cell);
    }

    _tellCells(up) {
      this._eachCell((cell) => cell._connection(up));
    }

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
      } else if (parent && this.requests.has(parent)) {
        this._replied(this.requests.get(parent), parent, type, msg.content);
      }
    }

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
        if (content.session && content.session !== sub.session) this._newSession(sub, content.session);
        if (Number.isInteger(content.seq)) sub.last = Math.max(sub.last, content.seq);
        this._adoptPrompts(sub);
      }
      if (!this.up) {
        if (this.everUp) setTimeout(() => this._eachCell((cell) => cell._resync()), RESYNC_DELAY);
        this.up = this.everUp = true;
        this.failures = 0;
        this._tellCells(true);
      }
    }

    /** While a subscription replays, note the prompts of runs this page did not start that
     * still wait (nothing of the run came after its prompt). */
    _notePrompt(sub, msg, facts, parent) {
      if (!sub.prompts) sub.prompts = new Map();
      if (msgTypeOf(msg) === "input_request" && sub.pending) {
        sub.prompts.set(parent, {seq: facts.seq, msg: msg, cellId: String(facts.cell_id)});
      } else {
        sub.prompts.delete(parent);
      }
    }

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
    }

    /** The worksheet has another session (it starts at seq 1): a later one means the one
     * before ended (idle, restarted, or its device went away), and its variables with it. */
    _newSession(sub, session) {
      const previous = sub.session;
      sub.session = session;
      sub.last = 0;
      const cell = sub.cells.values().next().value;  // one event for the worksheet
      if (previous && cell) cell._event("session", {session, previous});
    }

    /** What the broker says of the worksheet's session (broker/closures.py): it ended, and
     * why; or it went idle, and its device ends it after `idle_timeout` s (from the message's
     * date). One event for the worksheet. */
    _sessionNote(sub, msg, facts) {
      const cell = sub.cells.values().next().value;
      if (!cell) return;
      if (msgTypeOf(msg) === "session_closed") {
        cell._event("closed", {reason: String(msg.content.reason || "ended")});
      } else if (typeof facts.idle_timeout === "number" && isObject(msg.header)) {
        const since = Date.parse(msg.header.date);
        cell._event("idle", {since: isNaN(since) ? Date.now() : since, timeout: facts.idle_timeout});
      }
    }

    _replied(record, msgId, type, content) {
      if (record.noSession && content.http_status === 409) {  // channelstart.js
        this.requests.delete(msgId);
        record.noSession();
      } else if (content.ok) {
        record.accepted = true;
        if (record.kind === "execute_request") record.cell._accepted(msgId, content.status);
        else if (record.kind !== "complete_request") this.requests.delete(msgId);  // (its reply)
      } else if (content.http_status === 409) {  // sent twice; the first one got through
        record.accepted = true;
      } else {
        this._fail(record, msgId, content.error || "refused");
      }
    }

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
      if (query && query.kind === "complete_request") {
        if (msgTypeOf(msg) === "complete_reply") {
          this.requests.delete(asker);
          query.resolve(msg.content);
        }
        return;
      }
      const record = parent ? this.requests.get(parent) : null;
      if (record && record.kind === "execute_request") {
        if (record.cell.requestId === parent) record.cell._message(facts.seq, msg);
        return;
      }
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
    }
  }

  const channels = new Map();

  function channelFor(server, token) {
    const key = server + " " + (token || "");
    if (!channels.has(key)) channels.set(key, new Channel(server, token));
    return channels.get(key);
  }
