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
      this.poll.onRunEnd = (cell) => this.pokeNotes(cell);
      window.addEventListener("online", () => this._reconnectSoon(0));
      window.addEventListener("offline", () => this._offline());
    }

    /** The browser went offline: the socket is given up at once (the cells say the
     * connection is lost, instead of running on with nothing coming), and no new one is
     * tried until the browser is online again (each try would be a console error). */
    _offline() {
      const ws = this.ws;
      if (!ws) return;
      ws.onclose = null;
      ws.close();
      this._closed(ws, true, 1000);
    }

    /** The page had its socket and lost it (or, over HTTP, the browser is offline). */
    get lost() {
      return this.mode === "poll" ? navigator.onLine === false : this.everUp && !this.up;
    }

    register(cell) {
      const key = cell.user + "/" + cell.worksheet;
      let sub = this.subs.get(key);
      if (!sub) {
        sub = {user: cell.user, worksheet: cell.worksheet, session: null, last: 0, cells: new Set()};
        this.subs.set(key, sub);
        if (this.ws && this.ws.readyState === WebSocket.OPEN) this._subscribe(sub);
      }
      if (this.mode === "poll") this._pollNotes(sub);  // (once per worksheet)
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

    /** The worksheet's next request gets a fresh session (its variables are gone). A
     * Promise, resolved once a request sent after it comes after it: at once on the
     * WebSocket (the gateway takes a socket's messages in order), once the gateway
     * answered over HTTP. */
    restart(cell) {
      if (this.request(cell, "restart_request", {}) === null) return this.poll.restart(cell);
      return Promise.resolve();
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
      if (navigator.onLine === false) return;  // the online event connects
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
      if (navigator.onLine === false) return;  // the online event connects
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
      for (const sub of this.subs.values()) this._pollNotes(sub);
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
  }

  const channels = new Map();

  function channelFor(server, token) {
    const key = server + " " + (token || "");
    if (!channels.has(key)) channels.set(key, new Channel(server, token));
    return channels.get(key);
  }
