  // ---- Cell: the @interacts in its output --------------------------------------------------

  // Methods of Cell (cell.js): a preset from a shared link, the InteractViews on screen,
  // what a change of their controls sends, and each run's output in place of the last.
  Object.assign(Cell.prototype, {
    /** Start the next interact this cell shows at `values` ({name: value}, as Share
     * stored them) and run its function with them; null forgets a preset not yet used. */
    presetInteract(values) {
      this.preset = isObject(values) ? values : null;
    },

    _takePreset() {
      const preset = this.preset || null;
      this.preset = null;
      return preset;
    },

    /** The values of the first interact in the cell's output ({name: value}), or null. */
    interactValues() {
      const node = this.outputElement.querySelector(".cellbus-interact");
      const view = node ? this.interacts.get(node.dataset.interactId) : null;
      return view ? view.shareable() : null;
    },

    _registerInteract(view) {
      this.interacts.set(view.id, view);
    },

    _sendInteract(view, values) {
      this.interacts.set(view.id, view);
      const content = {interact_id: view.id, values: values, state: nextState(view.id)};
      view.sent(content.state);
      this.channel.interact(this, content);
    },

    _interactRefused(interactId, error) {
      const view = this.interacts.get(interactId);
      if (view) view.refused(error);
    },

    _interactFailed(interactId, text) {
      const view = this.interacts.get(interactId);
      if (view) view.failed(text);
    },

    _interactFinished(interactId, state) {
      const view = this.interacts.get(interactId);
      if (view) view.finished(state);
    },

    /** One message of a run of interact `interactId` (over the WebSocket). The run folds into
     * a fresh Fold, which replaces the interact's output once the run shows something (or
     * ends showing nothing): a request skipped as stale (`ignored`) changes nothing. */
    _interactMessage(seq, msg, parent, interactId) {
      if (!this.fold || !this.fold.hasInteract(interactId)) return;
      const type = msgTypeOf(msg);
      const key = parent || "interact:" + interactId;
      let run = this.runs.get(key);
      if (!run) {
        if (type === "status" && msg.content.execution_state === "idle") return;  // ended
        run = {fold: new Fold()};
        this.runs.set(key, run);
      }
      const changed = run.fold.apply(seq, msg);
      let show = changed;
      if (type === "interact_reply") {
        this.runs.delete(key);
        const view = this.interacts.get(interactId);
        if (view) view.finished(msg.content.state);
        if (msg.content.ignored === true) return;
        show = true;
      }
      if (!show) return;
      this.fold.replaceInteractOutput(interactId, seq, run.fold);  // again: bumps its seq
      this._show(this.fold.view());
    },
  });
