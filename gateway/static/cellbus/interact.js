  // ---- InteractView: the controls of an @interact, and its output under them ---------------

  // Over HTTP, after an interact request: poll /update (long-polling when the server waits),
  // at least INTERACT_POLL_MIN ms apart and backing off to INTERACT_POLL_MAX while nothing
  // changes, until nothing has changed for INTERACT_FOLLOW_IDLE ms.
  const INTERACT_POLL_WAIT = 10;  // s
  const INTERACT_POLL_MIN = 150;
  const INTERACT_POLL_MAX = 1500;
  const INTERACT_FOLLOW_IDLE = 10000;
  let controlCount = 0;
  const interactStates = new Map();  // interact_id -> the last state this page sent

  /** Each request's state is above the last, also across reloads of the page (the clock). */
  function nextState(interactId) {
    const state = Math.max((interactStates.get(interactId) || 0) + 1, Date.now());
    interactStates.set(interactId, state);
    return state;
  }

  /** One interact block on screen: its controls, built once, and its output below them, which
   * later runs replace (see Cell._interactMessage). The controls stay the same elements while
   * the output changes, so a slider being dragged keeps its grip. */
  class InteractView {
    constructor(block, cell) {
      this.id = block.interact_id;
      this.cell = cell || null;
      this.controls = isObject(block.controls) ? block.controls : {};
      this.autoUpdate = block.auto_update !== false;
      this.values = {};
      this.waitingFor = 0;  // the state of the last request sent that has not finished
      // Values a shared link carried (Cell.presetInteract) start the controls where they were.
      const preset = cell ? cell._takePreset() : null;
      for (const [name, c] of Object.entries(this.controls)) {
        this.values[name] = isObject(c) ? presetValue(c, preset && preset[name]) : null;
      }
      const node = this.node = el("div", "cellbus-interact");
      node.dataset.interactId = this.id;
      node.setAttribute("role", "group");
      node.setAttribute("aria-label", "interact");
      const form = el("div", "cellbus-interact-controls");
      const layout = Array.isArray(block.layout) ? block.layout : Object.keys(this.controls);
      for (const name of layout) {
        if (typeof name === "string" && isObject(this.controls[name])) {
          form.appendChild(this._control(name, this.controls[name]));
        }
      }
      const actions = el("div", "cellbus-interact-actions");
      if (!this.autoUpdate) {
        this.updateButton = el("button", "cellbus-interact-update", "Update");
        this.updateButton.type = "button";
        this.updateButton.addEventListener("click", () => this.send());
        actions.appendChild(this.updateButton);
      }
      this.working = el("span", "cellbus-working");
      this.working.hidden = true;
      this.working.setAttribute("aria-hidden", "true");
      this.statusText = el("span", "cellbus-interact-status");
      this.statusText.setAttribute("role", "status");
      actions.append(this.working, this.statusText);
      form.appendChild(actions);
      this.notice = el("div", "cellbus-interact-notice");
      this.notice.setAttribute("role", "alert");
      this.notice.hidden = true;
      this.output = el("div", "cellbus-interact-output");
      this.view = new OutputView(this.output, this.cell);
      node.append(form, this.notice, this.output);
      this.view.update(isObject(block.output) ? block.output : {});
      node.cellbusUpdate = (b) => this.update(b);
      if (this.cell) this.cell._registerInteract(this);
      // Run the function with the preset values, so the output is theirs (after this draw).
      if (preset) Promise.resolve().then(() => this.send());
    }

    /** The controls' values by name (buttons have none): what Share keeps. */
    shareable() {
      const values = {};
      for (const [name, c] of Object.entries(this.controls)) {
        if (isObject(c) && c.type !== "button") values[name] = this.values[name];
      }
      return values;
    }

    labelOf(name) {
      const label = this.controls[name].label;
      return label === null || label === undefined || label === "" ? name : asText(label);
    }

    _control(name, c) {
      const id = "cellbus-control-" + (++controlCount);
      const type = typeof c.type === "string" && CONTROLS[c.type] && c.type !== "unknown"
        ? c.type : "unknown";
      const row = el("div", "cellbus-control cellbus-control-" + type);
      row.dataset.control = name;
      const [node, labelled] = CONTROLS[type](this, name, c, id, id + "-label");
      const label = el(labelled ? "label" : "span", "cellbus-control-label", this.labelOf(name));
      label.id = id + "-label";
      if (labelled) label.htmlFor = id;
      row.append(label, node);
      return row;
    }

    /** A control's value changed; `commit` is an explicit Enter in a text box. */
    changed(name, value, commit) {
      this.values[name] = value;
      if (this.autoUpdate) {
        this.send();
      } else {
        this.updateButton.classList.add("cellbus-dirty");
        if (commit) this.send();
      }
    }

    /** Run the function with the current values (and `extra`: a pressed button's true). */
    send(extra) {
      const values = {};
      for (const [name, c] of Object.entries(this.controls)) {
        values[name] = isObject(c) && c.type === "button" ? false : this.values[name];
      }
      Object.assign(values, extra || {});
      if (this.updateButton) this.updateButton.classList.remove("cellbus-dirty");
      if (!this.cell) {
        this.refused("this interact is not part of a cell");
        return;
      }
      this.cell._sendInteract(this, values);
    }

    /** The output blocks changed (a run, or the cell's own output): keep the controls. */
    update(block) {
      if (block.interact_id !== this.id) return false;
      this.view.update(isObject(block.output) ? block.output : {});
      return true;
    }

    sent(state) {
      this.waitingFor = state;
      this.notice.hidden = true;
      this.working.hidden = false;
      this.node.setAttribute("aria-busy", "true");
      this.statusText.textContent = "updating…";
    }

    /** A run (or a skipped stale request) of `state` finished. */
    finished(state) {
      if (!Number.isInteger(state) || state < this.waitingFor) return;
      this._idle();
    }

    refused(error) {
      this.failed("The server refused this update: " + error);
    }

    failed(text) {
      this._idle();
      this.notice.textContent = text;
      this.notice.hidden = false;
    }

    _idle() {
      this.waitingFor = 0;
      this.working.hidden = true;
      this.node.removeAttribute("aria-busy");
      this.statusText.textContent = "";
    }
  }
