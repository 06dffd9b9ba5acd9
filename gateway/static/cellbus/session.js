  // ---- SessionBar: the worksheet's session, what it runs, and its Restart button ----------

  const KERNELS = {python: "Python 3", python3: "Python 3", ir: "R", r: "R", bash: "Bash"};
  const SESSION_REPLACED = "a new session: the last one ended (idle too long, restarted, or "
    + "its machine went away), and its variables with it";
  /** The cell id of keep-alive runs (Channel.keepAlive): no cell of a page has it, and no
   * list of a worksheet's cells names it (protocol/counts.py). */
  const KEEPALIVE_CELL = "keepalive";
  /** A session about to end idle is said this long before (at most half its timeout). */
  const WARN_BEFORE = 120000;
  /** ms past the idle timeout after which a session not said closed gets no countdown. */
  const OVERDUE = 30000;
  /** What the page says when the store lacks output it shows (SessionBar.lost). */
  const LOST = "Output lost from the store: it was restored from an older backup, and the "
    + "output shown here from after that backup was taken is no longer stored. It stays on "
    + "this page until a reload, which will not show it again: copy what you need now. New "
    + "output is stored as before.";
  /** What the page says of a session ended on purpose from elsewhere. */
  const ENDED_ELSEWHERE = "ended from elsewhere (a Restart or Delete worksheet in another tab, "
    + "or a Jupyter client's shutdown): the next evaluation starts a new session, without "
    + "the old variables";
  /** The device's (or broker's) words for why a session ended, as the page says them. */
  const GONE_WHY = {
    "idle timeout": "idle too long; its variables were cleared (the next evaluation starts "
      + "a new session)",
    "shutdown requested": ENDED_ELSEWHERE,
    // the broker's own note of a kernel's shutdown or a deletion (protocol/kernels.py SHUT_DOWN)
    "shut down": ENDED_ELSEWHERE,
    "device lost": "its machine stopped answering, so its variables are gone (the next "
      + "evaluation starts a new session)",
  };
  const SESSION_TEXT = {
    none: "no session yet: the first evaluation starts one",
    starting: "starting…", busy: "busy", idle: "idle",
  };

  /** Above a worksheet's cells: the kernel its session runs, the session's state (none,
   * starting, busy, idle, gone: why), and Restart (a fresh session; variables go). A
   * worker that ended on its own (the device's --idle-timeout, say) is said from the
   * broker's session_closed note (gone: why), and warned of before from the idle timeout
   * the broker puts on each idle status (with Keep); a worker placed again under the same
   * session shows when the next run starts it (its execution number starts again at 1). */
  class SessionBar {
    constructor(kernel, cells) {
      this.cells = cells;
      this.known = false;     // a session ran something since the page loaded or restarted it
      this.why = null;        // gone: why, until the next session runs
      this.notice = null;     // a new session replaced the last: said until the next run
      this.rested = false;    // no cell ran since the notice came
      this.restarted = false; // the next new session is the Restart's, no news
      this.old = new Set();   // cells still showing a run of the session Restart ended
      this.runs = new Set();  // cells whose run this page sent and that has not ended
      this.lastCount = null;  // the last execution number seen
      this.idleUntil = null;  // when the device ends the idle session (ms), if it said
      this.warnFrom = null;   // when the page starts to warn of it (ms)
      this.ticker = null;
      this.node = el("div", "cellbus-session");
      this.kernel = el("span", "cellbus-kernel");
      this.node.append(this.kernel);
      this.setKernel(kernel);
      this.state = el("span", "cellbus-session-state");
      this.state.setAttribute("role", "status");
      this.restartButton = el("button", "cellbus-restart", "Restart");
      this.restartButton.type = "button";
      this.restartButton.title = "a fresh session: the variables go";
      this.restartButton.addEventListener("click", () => this.restart());
      this.keepButton = el("button", "cellbus-keep", "Keep");
      this.keepButton.type = "button";
      this.keepButton.title = "keep the session and its variables: it runs nothing";
      this.keepButton.hidden = true;
      this.keepButton.addEventListener("click", () => this.keep());
      // Said once the store, restored from a backup, lacks output this page showed (lost).
      this.lostNote = el("p", "cellbus-lost", LOST);
      this.lostNote.setAttribute("role", "alert");
      this.lostNote.hidden = true;
      this.node.append(this.state, this.keepButton, this.restartButton, this.lostNote);
      this.show();
    }

    /** Name `kernel` as the one the session runs (the worksheet's selector chose it: the
     * bar said the kernel the page opened with, "Python 3" over a session of R). */
    setKernel(kernel) {
      const name = typeof kernel === "string" && kernel ? kernel : "python";
      this.kernel.textContent = KERNELS[name.toLowerCase()] || name;
    }

    /** The store was restored from an older copy and lacks output of this session that
     * the page shows (Channel._lost): said until the page is reloaded (which shows what
     * the store has), so the person copies what they need first. */
    lost() {
      this.lostNote.hidden = false;
    }

    /** The session ended on its device for `reason` (a session_closed note): gone, and
     * why, until a session runs again. */
    closed(reason) {
      this.idleUntil = null;
      if (this.restarted) return;  // the Restart's own end: said already
      this.known = false;
      this.why = GONE_WHY[reason] || reason;
      this.show();
    }

    /** A run of nothing started the session (a completion asked before any run): it is
     * there, idle, with none of a gone one's variables. */
    started() {
      this.known = true;
      this.why = null;
      this.show();
    }

    /** The session went idle at `since` (ms) and its device ends it after `timeout` s
     * idle: a warning shows shortly before, with Keep. */
    idled(since, timeout) {
      this.idleUntil = since + timeout * 1000;
      this.warnFrom = this.idleUntil - Math.min(WARN_BEFORE, timeout * 500);
      this._tick();
    }

    _tick() {
      clearTimeout(this.ticker);
      this.ticker = null;
      const now = Date.now();
      // Long past its end and not closed (an interact's longer timeout, clocks apart, an old
      // idle status replayed): no countdown the page cannot keep honest.
      if (this.idleUntil !== null && now > this.idleUntil + OVERDUE) this.idleUntil = null;
      this.show();
      if (this.idleUntil === null) return;
      this.ticker = setTimeout(() => this._tick(), now < this.warnFrom ? this.warnFrom - now : 1000);
    }

    /** A cell of the page sent a run: the session is no longer idle. (Not on its busy status:
     * the idle note comes while its cell still shows the run it ends.) */
    sent(cell) {
      this.idleUntil = null;
      this.runs.add(cell);
      this.show();
    }

    /** `cell`'s run ended (done, error, aborted): a session ran it, though the page may
     * never have seen it running (over HTTP, a short run's first /update is its end). Not
     * one of the session Restart ended. */
    ended(cell) {
      if (this.runs.delete(cell) && !this.old.has(cell)) {
        this.known = true;
        this.why = null;
      }
      this.show();
    }

    /** Keep the idle session: an evaluation of nothing starts its idle clock again. */
    keep() {
      const cell = this.cells[0];
      if (!cell) return;
      this.idleUntil = null;
      cell.channel.keepAlive(cell);
      this.show();
    }

    /** "idle: variables are cleared in …" once the warning is due, else null. */
    _warning() {
      if (this.idleUntil === null || Date.now() < this.warnFrom) return null;
      const s = Math.max(0, Math.round((this.idleUntil - Date.now()) / 1000));
      if (s === 0) return "idle: the variables are being cleared (idle past the timeout)";
      return "idle: variables are cleared in " + (s < 90 ? s + " s" : Math.round(s / 60) + " min")
        + " unless the session is used (Keep keeps it)";
    }

    /** A Promise, resolved once the next run goes to the new session (Channel.restart). */
    restart() {
      const cell = this.cells[0];
      if (!cell) return Promise.resolve();
      const restarted = cell.channel.restart(cell);
      // Runs going on end with the old session: they are no sign of a new one.
      this.old = new Set(this.cells.filter((c) => c.busy));
      this.known = false;
      this.notice = null;
      this.restarted = true;
      this.lastCount = null;
      this.why = "restarted: the next evaluation starts a new session, without the old variables";
      this.show();
      return restarted;
    }

    /** An execution number `count`: 1 after others is a new worker, with none of the old
     * variables, though the session's name stayed (the device ended an idle worker, or
     * went away, and the broker placed the session again). */
    counted(count) {
      if (count === 1 && this.lastCount !== null) this.replaced();
      this.lastCount = count;
    }

    /** The worksheet's session was replaced by a new one (see Channel._newSession). */
    replaced() {
      if (this.restarted) return;
      this.notice = SESSION_REPLACED;
      this.rested = false;
      this.show();
    }

    show() {
      for (const c of this.old) if (!c.busy || c.status === "sending") this.old.delete(c);
      const current = this.cells.filter((c) => c.busy && !this.old.has(c));
      const busy = current.length > 0;
      const running = current.some((c) => c.status === "running");
      if (running) {
        this.known = true;
        this.why = null;
        if (this.rested) this.notice = null;
      }
      if (!busy) this.rested = this.notice !== null;
      if (!busy && this.known) this.restarted = false;  // the restarted session has run
      let state;
      if (running) state = "busy";
      else if (busy) state = this.known ? "busy" : "starting";
      else if (this.why) state = "gone";
      else if (this.known || this.cells.some((c) => c.status in FINISHED)) state = "idle";
      else state = "none";
      this.node.dataset.state = state;
      const warning = state === "idle" ? this._warning() : null;
      setHidden(this.keepButton, warning === null, this.restartButton);
      this.node.classList.toggle("cellbus-session-warning", warning !== null);
      const text = state === "gone" ? "gone: " + this.why : warning || SESSION_TEXT[state];
      this.state.textContent = this.notice ? text + " · " + this.notice : text;
      this.node.classList.toggle("cellbus-session-news", this.notice !== null);
    }
  }
