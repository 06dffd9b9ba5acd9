  // ---- The worksheet page's cells, kept in the store and in this browser ----------------

  /** The cells of `user`'s `worksheet` (their order, type and text), kept in the store as
   * the worksheet's layout (GET and POST /home/USER/WORKSHEET/layout, a note no kernel
   * sees), so a reload and another browser show them again, Markdown cells in their place;
   * and in this browser, for a store that cannot be reached. Code cells' output comes from
   * the store as always. The page (templates/worksheet.html) loads it, makes its worksheet
   * of `codes` and `ran`, attaches it, and calls `save` as cells change and `follow` for
   * another page's runs; `note` says when the store refused a save. */
  async function layoutStore(user, worksheet, note) {
    const key = "cellbus:code:" + user + "/" + worksheet;
    const layoutUrl = "/home/" + encodeURIComponent(user) + "/" + encodeURIComponent(worksheet)
      + "/layout";
    let saved = [];
    try { saved = JSON.parse(localStorage.getItem(key) || "[]"); } catch (e) { saved = []; }
    // This browser's copy holds a change the store had not confirmed when its page went
    // (markKey: {base: the store's revision it was made over, tab: the tab that made it});
    // see keepMark. A tab keeps its name over a reload (sessionStorage), and another tab of
    // this browser never takes the mark as its own: it would save that tab's cells as they
    // were, under that tab's next save (which would then find the worksheet changed).
    const markKey = "cellbus:unsaved:" + user + "/" + worksheet;
    let mark = null, tab = null;
    try { mark = JSON.parse(localStorage.getItem(markKey) || "null"); } catch (e) { mark = null; }
    try {
      tab = sessionStorage.getItem("cellbus:tab")
        || Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16)).join("");
      sessionStorage.setItem("cellbus:tab", tab);
    } catch (e) { tab = null; }
    // The revision of the layout this page loaded, then saved: a save names it, so that one
    // from a page that did not see another tab's save is refused (409) rather than drop it.
    let revision = null, known = false, conflicted = false;
    // The cells the store holds at `revision`, as sameCells keys them; whether this browser's
    // copy is kept over the store's (see mine below).
    let held = null, mine = false;
    const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
    const sameCells = (cells) => JSON.stringify((cells || []).map((c) => [
      c.id, c.type, c.code, c.outputs_hidden === true, c.outputs_cleared || null]));
    let ran = null;  // the cells with runs in the store: the only ones that ask for their output
    try {
      const r = await fetch(layoutUrl, {credentials: "same-origin"});
      const body = await r.json();
      // A save the page before a reload sent as it went (a cell moved, code typed) may reach
      // the store only after this read: if the store still holds what that page's change was
      // made over, this browser's copy is the newer, and is saved again (mine); before, the
      // page showed the store's older cells, and the move or the code seemed lost.
      mine = r.ok && Array.isArray(body.cells) && Array.isArray(saved) && isObject(mark)
        && mark.base === (body.revision || null) && tab !== null && mark.tab === tab;
      if (r.ok && Array.isArray(body.cells) && !mine) saved = body.cells;
      if (r.ok) {
        revision = body.revision || null;
        known = true;
        ran = body.ran;
        held = sameCells(body.cells);
      }
    } catch (e) { /* the store cannot be reached: this browser's copy */ }
    // The worksheet whose cells are kept (none while held: see hold), and the saves.
    let sheet = null, attached = null;
    let pushTimer = null, pushing = null, again = false;
    const layoutNote = note;
    /** What the page says when its save met another page's change (a save names
     * on_conflict "report": the gateway answers it 200 with saved false, not 409, which the
     * browser's console would show as an error), by the kind of change. */
    const CONFLICTS = {
      deleted: "This worksheet was deleted elsewhere (Delete worksheet in another tab, or its"
        + " API) since this page loaded it, so this page saves no more of its cells (that would"
        + " bring back what was deleted): copy what you want to keep, then reload.",
      changed: "This worksheet's cells were changed in another tab or browser since this page"
        + " loaded them, so this page saves no more of them (it would drop that change): copy"
        + " what you typed here, then reload.",
    };
    /** Say on the page when the store refused the layout (a quota: 429 and what to do; a
     * conflict: another tab deleted the worksheet or saved since this page loaded, and this
     * one saves no more); keep the revision a save answered. */
    async function noteAnswer(r) {
      const body = await r.json().catch(() => ({}));
      if (r.ok && body.saved === false) {
        if (body.conflict === "changed" && await ownChange()) {
          again = true;  // over the store's revision now
          return;
        }
        conflicted = true;
        layoutNote.textContent = CONFLICTS[body.conflict] || CONFLICTS.changed;
        layoutNote.hidden = false;
        return;
      }
      layoutNote.hidden = r.ok;
      if (r.ok) {
        if ("revision" in body) revision = body.revision;
        held = sent;
        keepMark();
        adopted = 0;
        return;
      }
      conflicted = r.status === 409;
      layoutNote.textContent = conflicted ? CONFLICTS.changed
        : "The cells of this worksheet are kept in this browser only: "
        + (body.error || "the store answered " + r.status);
    }
    // The cells this page started from and the last it sent, each as sameCells keys them: a
    // store that holds one of them met no other page's change (see ownChange).
    let started = null, sent = null, adopted = 0;
    /** Mark this browser's copy as holding a change the store has not confirmed (the store's
     * revision it was made over), or as in the store: a reload that reads the store before
     * the last save reached it keeps the copy (see mine). */
    function keepMark() {
      try {
        if (sheet && sameCells(sheet.layout()) !== held) {
          localStorage.setItem(markKey, JSON.stringify({base: revision, tab: tab}));
        } else {
          localStorage.removeItem(markKey);
        }
      } catch (e) { /* private mode */ }
    }
    /** A save refused because the store changed since this page read it may have met only
     * this page's own earlier save: one sent as the page before a reload went away, which the
     * store took after this page read the layout (its GET came first); or only a change
     * this page shows already: another page's run this page followed shows its code here
     * before the store has it, and this page's save, typed before it took the store's
     * layout (follow), was refused for it. If the store holds just the cells this page
     * started from or last sent, or cell by cell the one it started from or the one it
     * shows (nothing this page's save would drop), take its revision (true); twice in a row
     * at most, then it is a conflict. */
    async function ownChange() {
      if (adopted >= 2) return false;
      try {
        const r = await fetch(layoutUrl, {credentials: "same-origin"});
        const body = await r.json();
        const cells = sameCells(body.cells);
        if (!r.ok || (cells !== started && cells !== sent && !shownHere(body.cells))) return false;
        revision = body.revision || null;
        held = cells;
        keepMark();
        adopted += 1;
        return true;
      } catch (e) {
        return false;
      }
    }
    /** Whether each of the store's `cells` is, in its place, the one this page started from
     * or the one it shows now (see ownChange). */
    function shownHere(cells) {
      if (!sheet) return false;
      const from = JSON.parse(started || "[]");
      const now = JSON.parse(sameCells(sheet.layout()));
      const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
      return Array.isArray(cells) && cells.length === now.length && JSON.parse(sameCells(cells))
        .every((cell, i) => same(cell, now[i]) || same(cell, from[i]));
    }
    // The size of a layout the store refused as too big (413): one as big or bigger is not
    // sent again (the note says why), so each change does not ask for the same refusal.
    let tooBig = Infinity;
    /** Send the layout to the store, one request at a time, each over the one before. A save
     * that fits the browser's 64 KiB for requests that outlive their page is sent as one, so
     * a reload or a closed tab does not abort it midway. */
    function push() {
      clearTimeout(pushTimer);
      pushTimer = null;
      if (conflicted || !sheet) return;
      if (pushing) { again = true; return; }
      if (navigator.onLine === false) { offlineSave = true; return; }  // kept here meanwhile
      const layout = {cells: sheet.layout()};
      if (known) Object.assign(layout, {base: revision, on_conflict: "report"});
      sent = sameCells(layout.cells);
      const body = JSON.stringify(layout);
      const size = new TextEncoder().encode(body).length;
      if (size >= tooBig) return;
      pushing = fetch(layoutUrl, {
        method: "POST", credentials: "same-origin", keepalive: size < 56 * 1024,
        headers: {"Content-Type": "application/json"}, body: body,
      }).then((r) => {
        tooBig = r.status === 413 ? size : Infinity;
        return noteAnswer(r);
      }).catch(() => {
        /* kept in this browser; the next change sends it again */
      }).then(() => {
        pushing = null;
        if (again) { again = false; push(); }
      });
    }
    /** Keep the layout: here at once, in the store at once (`now`: a cell added, moved,
     * deleted, retyped or rendered) or half a second after typing stops. */
    function save(now) {
      if (!sheet) return;
      try { localStorage.setItem(key, JSON.stringify(sheet.layout())); } catch (e) { /* full */ }
      keepMark();
      if (now === true) push();
      else if (!pushTimer) pushTimer = setTimeout(push, 500);
    }
    addEventListener("pagehide", () => { if (pushTimer) push(); });
    // A save due while the browser was offline (not tried: a console error) goes once online.
    let offlineSave = false;
    addEventListener("online", () => { if (offlineSave) { offlineSave = false; push(); } });
    // Another page's run in this worksheet (cellbus:followed): that page saved its cells, so
    // this one takes the store's layout and its revision (its next save is then no conflict),
    // if it has nothing of its own unsaved; else its next save says the worksheet changed
    // elsewhere, as before. The store may not have the run's code yet (that page saves half a
    // second after typing): asked again a few times until it has, and once more for a run
    // that started meanwhile. A run from a client that keeps no layout (the HTTP API, a
    // Jupyter client) never shows there: the cell added for it stays all the same.
    const followed = new Set();  // the cells of those runs, not yet seen in the store's layout
    const ranCode = new Map();   // cell id -> the code a run of it followed here ran
    let following = false, followAgain = false;
    async function follow() {
      const clean = () => !pushTimer && !pushing && !offlineSave && !conflicted && layoutNote.hidden;
      if (following) {
        followAgain = true;
        return;
      }
      const ids = Array.from(followed);
      followed.clear();
      if (!clean()) return;
      following = true;
      followAgain = false;
      try {
        for (let tries = 1; ; tries++) {
          const r = await fetch(layoutUrl, {credentials: "same-origin"});
          const body = await r.json();
          if (!r.ok || !Array.isArray(body.cells) || !sheet || !clean()) return;
          const stored = new Map(body.cells.map((c) => [String(c.id), c.code]));
          const behind = ids.some((id) => !stored.has(id))
            || Array.from(ranCode).some(([id, code]) => stored.has(id) && stored.get(id) !== code);
          if (behind && tries < 5) {
            await new Promise((resolve) => setTimeout(resolve, 700));
            continue;
          }
          // Still behind: that page typed since (its code is the store's), or a client that
          // keeps no layout ran it (sheet.follow keeps a cell added for it).
          ranCode.clear();
          sheet.follow(body.cells);
          revision = body.revision || null;
          started = sent = held = sameCells(body.cells);
          try { localStorage.setItem(key, JSON.stringify(sheet.layout())); } catch (e) { /* full */ }
          keepMark();
          return;
        }
      } catch (e) {
        /* the store cannot be reached: this page's cells stay as they are */
      } finally {
        following = false;
        if (followAgain) follow();
      }
    }

    /** Another page's run of cell `cellId` (its `code`, when the run said it). */
    function followRun(cellId, code) {
      followed.add(cellId);
      if (typeof code === "string") ranCode.set(cellId, code);
      follow();
    }
    return {
      codes: Array.isArray(saved) ? saved : [],  // the cells to show, the store's or this browser's
      ran: Array.isArray(ran) ? ran : null,
      /** Keep `worksheet`'s cells from now on (saving this browser's copy, if it is newer). */
      attach(made) {
        sheet = attached = made;
        started = sameCells(made.layout());
        if (mine) save(true);  // the change the store may not have had yet
      },
      save: save,
      follow: followRun,
      /** Whether the store took the last save (else the note says why). */
      stored: () => layoutNote.hidden,
      /** The layout in the store as it is on the page now. */
      async flush() {
        if (pushTimer) push();
        while (pushing) await pushing;
      },
      /** Save now, even if no save is due, and wait for it. */
      async saveNow() {
        pushTimer = pushTimer || setTimeout(push, 0);
        await this.flush();
      },
      /** Save nothing more (a save due is dropped) until resume: the page replaces or
       * deletes the worksheet. */
      async hold() {
        sheet = null;
        clearTimeout(pushTimer);
        pushTimer = null;
        while (pushing) await pushing;
      },
      resume() { sheet = attached; },
      /** Forget this browser's copy (the worksheet was deleted). */
      forget() {
        for (const k of [key, markKey]) {
          try { localStorage.removeItem(k); } catch (e) { /* private mode */ }
        }
      },
    };
  }
