  // ---- Channel: a worksheet's session started by a run of nothing --------------------------

  // Methods of Channel (channel.js). A completion is asked of the worksheet's session, and
  // before its first run (or once it ended: idle too long, restarted) there is none: the
  // broker refuses it (409). As Jupyter starts a notebook's kernel before anything runs, the
  // page then starts the session with an evaluate of nothing, as Keep does, and asks again:
  // Tab completes from the first keystroke. The run is under KEEPALIVE_CELL, which no cell
  // shows, takes no execution number (blank code) and no list of the worksheet's cells
  // names; it is one session, placed and counted like any other, one start at a time per
  // worksheet, and it ends idle as any other does.

  /** ms a session may take to start for a completion before the completion gives up. */
  const START_TIMEOUT = 30000;
  /** What Channel._ask resolves to when the worksheet runs no session. */
  const NO_SESSION = Symbol("no session");

  Object.assign(Channel.prototype, {
    /** A Promise of the session's complete_reply content for `code` with the cursor at
     * `cursorPos` (code points), or of null: over HTTP, refused, or no answer in time. A
     * worksheet with no session gets one first (startSession). */
    complete(cell, code, cursorPos) {
      return this.query(cell, "complete", {code: code, cursor_pos: cursorPos});
    },

    /** The same for the session's help on the name at `cursorPos` (Shift+Tab): its
     * inspect_reply content ({found, data}), or null. */
    inspect(cell, code, cursorPos) {
      return this.query(cell, "inspect", {code: code, cursor_pos: cursorPos, detail_level: 0});
    },

    /** Ask the session `what` ("complete", "inspect": a Jupyter query) with `content`. */
    async query(cell, what, content) {
      const answer = await this._ask(cell, what, content);
      if (answer !== NO_SESSION) return answer;
      if (!await this.startSession(cell)) return null;
      const again = await this._ask(cell, what, content);
      return again === NO_SESSION ? null : again;
    },

    /** One query (what_request): its reply's content, null, or NO_SESSION (refused: 409).
     * Over HTTP, PollTransport's. Asked before the socket is through (opening, subscribing,
     * reconnecting), it goes with the requests waiting for it, within COMPLETE_TIMEOUT. */
    _ask(cell, what, content) {
      if (this.mode === "poll") return this.poll.query(cell, what, content);
      return new Promise((resolve) => {
        const msgId = this.request(cell, what + "_request", content);
        if (msgId === null) return resolve(null);
        const record = this.requests.get(msgId);
        record.replyType = what + "_reply";
        record.resolve = resolve;
        record.noSession = () => resolve(NO_SESSION);
        setTimeout(() => {
          if (this.requests.get(msgId) === record) this.requests.delete(msgId);
          resolve(null);
        }, COMPLETE_TIMEOUT);
      });
    },

    /** Start `cell`'s worksheet session (a run of nothing), once at a time per worksheet:
     * a Promise of whether it ran. The worksheet's cells hear cellbus:started. */
    startSession(cell) {
      const sub = this.subs.get(cell.user + "/" + cell.worksheet);
      if (!sub) return Promise.resolve(false);
      if (!sub.starting) {
        sub.starting = this.runNothing(cell, START_TIMEOUT).then((ran) => {
          sub.starting = null;
          if (ran && cell.element) cell._event("started", {});
          return ran;
        });
      }
      return sub.starting;
    },

    /** Run nothing in `cell`'s worksheet session, so its device's idle clock starts again
     * (Keep), or so it starts: under a cell id of its own, so no cell of the page shows it
     * or loses its last run. */
    keepAlive(cell) {
      this.runNothing(cell, START_TIMEOUT);
    },

    /** Evaluate nothing under KEEPALIVE_CELL: a Promise of whether the run ended (its idle
     * status came, or over HTTP its /update said done) within `timeout` ms; false if it
     * failed. A stand-in cell with no place on the page takes what the transport says. */
    runNothing(cell, timeout) {
      return new Promise((resolve) => {
        const keeper = {user: cell.user, worksheet: cell.worksheet, cellId: KEEPALIVE_CELL,
                        options: cell.options, requestId: null, generation: 0, busy: true,
                        element: document.createElement("div"),  // its usage line goes here
                        _accepted(msgId) {  // over HTTP it learns its msg_id here
                          if (keeper.requestId === null && keeper.busy) keeper.requestId = msgId;
                        },
                        _running() {}, _show() {}, _connection() {}, _counted() {}};
        const timer = setTimeout(() => done(false), timeout);
        const done = (ran) => {
          clearTimeout(timer);
          if (keeper.requestId) this.forget(keeper.requestId);
          keeper.busy = false;
          keeper.requestId = null;
          resolve(ran);
        };
        keeper._failed = keeper._refused = () => done(false);
        keeper._finish = (status) => done(status === "done");
        keeper._message = (seq, msg) => {
          if (msgTypeOf(msg) === "status" && msg.content.execution_state === "idle") done(true);
        };
        keeper.requestId = this.evaluate(keeper, "");  // null over HTTP: see _accepted
      });
    },
  });
