  // ---- PollTransport: the HTTP API (POST evaluate, long-poll update) ------------------------

  /** The HTTP API behind the same interface as Channel (evaluate, interrupt, interact,
   * complete, follow, document, register, forget, connected), for pages where no WebSocket
   * gets through. It tells a cell what happens by the same calls Channel makes: _accepted,
   * _running, _counted, _show, _finish, _failed, _connection and the _interact* ones. Over
   * HTTP the cell sees whole blocks (/update's), not messages to fold. */
  const MINE_KEPT = 1000;  // runs a page remembers sending over HTTP (PollTransport.mine)

  class PollTransport {
    constructor(server, token) {
      this.server = server;
      this.token = token;
      this.cells = new WeakMap();  // cell -> its HTTP state (see _of)
      this.onRunEnd = null;        // function(cell) once a run followed here ended
      this.mine = new Set();       // msg_ids of the runs this page sent (the newest MINE_KEPT)
    }

    register() {}  // nothing to subscribe to

    unregister() {}

    forget() {}

    get connected() {
      return true;
    }

    /** A cell's HTTP state: the blocks shown and the seq they are at, its interact POSTs
     * (one at a time per interact) and the run being followed. */
    _of(cell) {
      let s = this.cells.get(cell);
      if (!s) {
        s = {blocks: {}, seq: 0, interacts: new Map(), follow: null, active: 0, following: false};
        this.cells.set(cell, s);
      }
      return s;
    }

    url(cell, action) {
      const parts = [cell.user, cell.worksheet, cell.cellId].map(encodeURIComponent);
      return this.server + "home/" + parts.join("/") + "/" + action;
    }

    /** fetch() `url`, with the token (if there is one) in an Authorization header, and
     * read its answer whole: {status, ok, body: its JSON, or null}. Every request the page
     * makes is read to its end: one whose answer is not read stays open (DevTools shows it
     * pending, for good) and a reload aborts it. Rejects as fetch() does. */
    async ask(url, init) {
      let o = init;
      if (this.token) {
        o = Object.assign({}, init || {});
        o.headers = Object.assign({}, o.headers || {}, {Authorization: "Bearer " + this.token});
      }
      const r = await fetch(url, o);
      const body = await r.json().catch(() => null);
      return {status: r.status, ok: r.ok, body: body};
    }

    /** Why a fetch() to the gateway failed. A browser hides why: a page of an origin the
     * gateway does not allow (--allow-origin) sees a network error. A plain GET (no
     * preflight, no token) then gets the gateway's 403, which that origin may read. */
    async whyFailed(cell) {
      try {
        const r = await fetch(this.url(cell, "update"), {cache: "no-store"});
        const body = await r.json().catch(() => ({}));
        if (r.status === 403 && typeof body.error === "string") {
          return "The server refuses this page: " + body.error;
        }
      } catch (e) { /* not reached indeed */ }
      return "Could not reach the server; check the connection and try again.";
    }

    /** The cell's /update document after `since` (waiting up to `wait` s), or null. */
    async document(cell, since, wait) {
      try {
        const r = await this.ask(this.url(cell, "update?since=" + since
                                           + (wait ? "&wait=" + wait : "")), {cache: "no-store"});
        return r.ok && isObject(r.body) ? r.body : null;
      } catch (e) {
        return null;
      }
    }

    /** POST `code`; the msg_id goes to cell._accepted when the gateway has taken it. */
    evaluate(cell, code) {
      this._evaluate(cell, code);
      return null;
    }

    async _evaluate(cell, code) {
      const gen = cell.generation;
      await whenOnline();
      if (gen !== cell.generation) return;
      let r;
      try {
        r = await this.ask(this.url(cell, "evaluate"), {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(cell.options.kernel ? {input: code, kernel: cell.options.kernel}
                               : {input: code}),
        });
      } catch (e) {
        const why = await this.whyFailed(cell);
        if (gen === cell.generation) cell._failed(why);
        return;
      }
      if (gen !== cell.generation) return;
      const body = r.body || {};
      if (r.status !== 202) {
        cell._failed("The server refused this evaluation: " + (body.error || "HTTP " + r.status));
        return;
      }
      this.mine.add(body.msg_id);
      if (this.mine.size > MINE_KEPT) this.mine.delete(this.mine.values().next().value);
      cell._accepted(body.msg_id, body.status || "needs_work");
      this.follow(cell, body.msg_id, null);
    }

    /** Show request `msgId` of `cell` as it goes on, until it ends: from `doc` (an /update
     * document already shown) or from nothing. `other`: a run another tab or client
     * started (Channel._followPolled): its code is told to the page as /update has it
     * (cellbus:followed), and a later run of theirs in the cell is followed in its turn
     * (the session notes told only the last run of each cell). */
    async follow(cell, msgId, doc, other) {
      const s = this._of(cell);
      s.blocks = doc ? Object.assign({}, doc.output) : {};
      s.seq = doc && Number.isInteger(doc.seq) ? doc.seq : 0;
      let delay = 500;
      while (cell.requestId === msgId && cell.busy) {
        if (navigator.onLine === false) {
          cell._connection(false);
          await whenOnline();
        }
        const next = await this.document(cell, s.seq, 20);
        if (cell.requestId !== msgId || !cell.busy) return;
        if (!next) {
          cell._connection(false);
          await sleep(delay);
          delay = Math.min(delay * 2, 5000);
          continue;
        }
        delay = 500;
        cell._connection(true);
        if (next.request && next.request !== msgId && other && !this.mine.has(next.request)) {
          msgId = cell.requestId = next.request;  // theirs again: shown from its start
          s.blocks = {};
          s.seq = 0;
          continue;
        }
        if (next.request && next.request !== msgId) {
          cell._finish("superseded");
          return;
        }
        if (other && typeof next.input === "string" && next.input !== cell.input.value) {
          cell._event("followed", {cellId: cell.cellId, code: next.input});
        }
        this._showDocument(cell, next);
        cell._counted(next.input, next.execution_count);  // as its execute_input shows it
        if (next.status === "working") cell._running();
        if (next.status === "done" || next.status === "error") {
          showUsage(cell, next.usage);
          cell._finish(next.aborted ? "aborted" : next.status);
          if (this.onRunEnd) this.onRunEnd(cell);
          return;
        }
      }
    }

    /** Show what changed in an /update answer. */
    _showDocument(cell, doc) {
      const s = this._of(cell);
      if (isObject(doc.lost)) cell._event("lost", doc.lost);  // (see Channel._lost)
      if (doc.reset) s.blocks = {};
      if (Object.keys(doc.output).length || doc.reset) {
        s.blocks = Object.assign({}, s.blocks, doc.output);
        cell._show(s.blocks);
      }
      if (Number.isInteger(doc.seq)) s.seq = doc.seq;
    }

    /** Stop the cell's run. One that ended meanwhile (the page has not heard yet) is
     * answered 200 {conflict}, not 409, which the console would show as an error. */
    interrupt(cell) {
      this.ask(this.url(cell, "interrupt?on_conflict=report"), {method: "POST"}).catch(() => {});
    }

    /** A Promise, resolved once the gateway answered (or could not be reached). */
    restart(cell) {
      return this.ask(this.url(cell, "restart"), {method: "POST"}).then(() => {}, () => {});
    }

    /** The session's completions or help over HTTP (POST …/complete or …/inspect as
     * `what` says, gateway/completions.py): a Promise of its reply's content, NO_SESSION when the worksheet runs none
     * (channelstart.js starts one then), or null (refused, or the request failed). */
    async query(cell, what, content) {
      try {
        const r = await this.ask(this.url(cell, what), {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(content),
        });
        if (!r.ok || !isObject(r.body)) return null;
        return r.body.session === false ? NO_SESSION : r.body;
      } catch (e) {
        return null;
      }
    }

    /** POST an interact request, one at a time per interact (the newest waiting one next),
     * then follow the cell's /update until that run is done. */
    async interact(cell, content) {
      const id = content.interact_id;
      const interacts = this._of(cell).interacts;
      let slot = interacts.get(id);
      if (!slot) {
        slot = {busy: false, next: null};
        interacts.set(id, slot);
      }
      if (slot.busy) {
        if (!slot.next || slot.next.state < content.state) slot.next = content;
        return;
      }
      slot.busy = true;
      const gen = cell.generation;
      try {
        while (content && gen === cell.generation) {
          let r;
          try {
            r = await this.ask(this.url(cell, "interact"), {
              method: "POST", headers: {"Content-Type": "application/json"},
              body: JSON.stringify(content),
            });
          } catch (e) {
            r = null;
          }
          if (!r) {
            cell._interactFailed(id, await this.whyFailed(cell));
          } else if (r.status !== 202) {
            cell._interactRefused(id, (r.body || {}).error || "HTTP " + r.status);
          } else {
            this._followInteract(cell, content);
          }
          content = slot.next;
          slot.next = null;
        }
      } finally {
        slot.busy = false;
      }
    }

    /** Poll /update, showing the blocks as they change, until nothing has changed for
     * INTERACT_FOLLOW_IDLE after the last request sent. (/update tells no run's end: its
     * document stays the cell's finished evaluation, with each interact's latest output in
     * it, and a finished cell's /update answers at once rather than waiting.) */
    async _followInteract(cell, content) {
      const s = this._of(cell);
      s.follow = content;  // the newest request sent; cleared by the first change after it
      s.active = performance.now();
      if (s.following) return;
      s.following = true;
      const gen = cell.generation;
      let delay = INTERACT_POLL_MIN;
      try {
        while (gen === cell.generation && performance.now() - s.active < INTERACT_FOLLOW_IDLE) {
          const follow = s.follow;
          const asked = performance.now();
          const doc = await this.document(cell, s.seq, INTERACT_POLL_WAIT);
          if (gen !== cell.generation) return;
          const changed = doc !== null && (Object.keys(doc.output).length > 0 || doc.reset);
          if (doc) this._showDocument(cell, doc);
          if (changed) {  // (which run it shows, /update does not say: take it as the newest)
            s.active = performance.now();
            if (s.follow) this._runShown(cell, s.follow);
          }
          if (changed || s.follow !== follow) {
            delay = INTERACT_POLL_MIN;
          } else if (performance.now() - asked < delay) {  // the server did not wait: we do
            await sleep(delay);
            delay = Math.min(delay * 2, INTERACT_POLL_MAX);
          }
        }
        if (s.follow) this._runShown(cell, s.follow);
      } finally {
        s.following = false;
      }
    }

    _runShown(cell, content) {
      const s = this._of(cell);
      if (s.follow === content) s.follow = null;
      cell._interactFinished(content.interact_id, content.state);
    }
  }
