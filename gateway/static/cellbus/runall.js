  // ---- Run all: Jupyter's Run All, Run All Above, Run Below, Restart and Run All ----------

  const FINISHED = {done: true, error: true, aborted: true};
  /** Where a run can end: FINISHED, or not run at all (refused, lost, evaluated elsewhere,
   * its cell deleted). */
  const ENDED = Object.assign({failed: true, superseded: true, removed: true}, FINISHED);

  /** Evaluate `cell` and resolve to how its run ended (a status of ENDED); `start` false:
   * evaluate nothing, wait for the run it shows (one restored after a reload) to end, or
   * resolve to its status at once if it runs none. */
  function runToEnd(cell, start) {
    return new Promise((resolve) => {
      if (start === false && !cell.busy) {
        resolve(cell.status);
        return;
      }
      const seen = (event) => {
        if (event.detail.cell !== cell || event.detail.busy || !(event.detail.status in ENDED)) return;
        cell.element.removeEventListener("cellbus:status", seen);
        resolve(event.detail.status);
      };
      cell.element.addEventListener("cellbus:status", seen);
      if (start !== false) cell.evaluate();
    });
  }

  /** Whether this page was loaded by a reload (not a link, Back or a new tab). */
  function reloaded() {
    const nav = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
    return Boolean(nav && nav.type === "reload");
  }


  /** The Run all family of makeWorksheet's `cells` (in `list`, options `o`, its `session`
   * bar): {runAll, runAbove, runBelow, restartRunAll, resume}; `resume()` goes on, after a
   * reload, with the Run all this tab had under way. Ctrl+F9 in `list` runs all. */
  function runAll(list, o, cells, session) {
    /** Run All, stopping on error (as Jupyter's): the code cells top to bottom, each once the
     * one before ended, and the Markdown ones rendered; empty code cells are passed over.
     * Resolves to the cell whose run did not end "done" (the rest did not run), or null, and
     * says so in a cellbus:ranall event ({stopped: that cell or null, name: "Run all", or
     * as runAbove and runBelow name it}). While one runs, another is the same one. */
    let allRun = null;
    function all() {
      return runCells(cells.slice(), "Run all");
    }
    /** Jupyter's Run All Above: the cells above `cell`, not it, as runAll. */
    function runAbove(cell) {
      return runCells(cells.slice(0, Math.max(0, cells.indexOf(cell))), "Run above");
    }
    /** Jupyter's Run Selected Cell and All Below: `cell` and the cells after it, as runAll. */
    function runBelow(cell) {
      return runCells(cells.slice(Math.max(0, cells.indexOf(cell))), "Run below");
    }
    /** Jupyter's Restart Kernel and Run All Cells: a fresh session, then runAll in it. */
    function restartRunAll() {
      if (allRun) return allRun;
      allRun = session.restart().then(() => runEach(cells.slice(), null, "Restart & run all"))
        .finally(() => { allRun = null; });
      return allRun;
    }
    function runCells(queue, name) {
      if (!allRun) allRun = runEach(queue, null, name).finally(() => { allRun = null; });
      return allRun;
    }
    // The cells a Run all has yet to end, kept for this tab (sessionStorage) as each starts:
    // a reload goes on with it (before, the cells after the one running never ran, and
    // nothing said so). The first of them was started before the reload: its run is waited
    // for, never started again.
    const runAllKey = "cellbus:runall:" + o.user + "/" + o.worksheet;
    function keepQueue(queue) {
      try {
        if (queue) sessionStorage.setItem(runAllKey, JSON.stringify(queue.map((c) => c.cellId)));
        else sessionStorage.removeItem(runAllKey);
      } catch (e) { /* private mode: a reload ends Run all */ }
    }
    async function runEach(queue, resumed, name) {
      let stopped = null;
      // As Jupyter queues them: each code cell to run shows [*] until its turn.
      for (const cell of queue) {
        if (cell.type === "code" && cell.input.value.trim() && cell !== resumed) cell._pending(true);
      }
      for (const [at, cell] of queue.entries()) {
        if (!cells.includes(cell)) continue;  // deleted meanwhile
        if (cell.type === "markdown") {
          if (cell.input.value.trim()) cell.render();
          continue;
        }
        if (!cell.input.value.trim()) {
          cell._pending(false);  // (emptied meanwhile)
          continue;
        }
        if (cell !== resumed) keepQueue(queue.slice(at));
        if (await runToEnd(cell, cell !== resumed) !== "done") {
          stopped = cell;
          break;
        }
      }
      keepQueue(null);
      for (const cell of queue) cell._pending(false);  // those it did not reach
      list.dispatchEvent(new CustomEvent("cellbus:ranall", {bubbles: true,
                                                            detail: {stopped: stopped, name: name}}));
      return stopped;
    }
    /** After a reload, the Run all this tab had under way: once the cell it was running
     * shows its stored run, wait for that run and go on with the cells after it. */
    async function resumeRunAll() {
      let ids = null;
      try { ids = JSON.parse(sessionStorage.getItem(runAllKey) || "null"); } catch (e) { ids = null; }
      if (!Array.isArray(ids) || !ids.length || !reloaded()) {
        keepQueue(null);
        return;
      }
      const queue = ids.map((id) => cells.find((c) => c.cellId === String(id))).filter(Boolean);
      if (!queue.length) return;
      await queue[0].restored;
      if (!allRun) allRun = runEach(queue, queue[0], "Run all").finally(() => { allRun = null; });
    }
    list.addEventListener("keydown", (event) => {
      if (event.key !== "F9" || !(event.ctrlKey || event.metaKey)) return;
      event.preventDefault();
      all();
    });
    return {runAll: all, runAbove: runAbove, runBelow: runBelow, restartRunAll: restartRunAll,
            resume: resumeRunAll};
  }

