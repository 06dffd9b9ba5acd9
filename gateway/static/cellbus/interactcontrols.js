  // ---- The controls of an @interact: their values and their elements --------------------

  // What InteractView (interact.js) builds its controls with: the value each control starts
  // with (or a shared link's, when it has the control's form), and CONTROLS, the element
  // of each control type, which tells its view when its value changes.

  function finiteOr(x, fallback) {
    const n = typeof x === "number" ? x : typeof x === "string" && x.trim() ? Number(x) : NaN;
    return Number.isFinite(n) ? n : fallback;
  }

  function asText(x) {
    if (x === null || x === undefined) return "";
    if (typeof x === "string") return x;
    return typeof x === "object" ? JSON.stringify(x) : String(x);
  }

  /** The value a control starts with, in the form the browser sends (see CONTROLS). */
  function initialValue(c) {
    switch (c.type) {
      case "slider": return finiteOr(c.default, finiteOr(c.start, 0));
      case "range_slider": {
        const d = Array.isArray(c.default) ? c.default : [];
        return [finiteOr(d[0], finiteOr(c.start, 0)), finiteOr(d[1], finiteOr(c.end, 100))];
      }
      case "input_box": return asText(c.default);
      case "checkbox": return c.default === true;
      case "selector": return Number.isInteger(c.default) ? c.default : 0;
      case "color_selector":
        return typeof c.default === "string" && /^#[0-9a-f]{6}$/i.test(c.default)
          ? c.default.toLowerCase() : "#000000";
      case "input_grid": {
        const rows = Math.max(0, Math.min(finiteOr(c.rows, 1) | 0, 100));
        const cols = Math.max(0, Math.min(finiteOr(c.cols, 1) | 0, 100));
        const d = Array.isArray(c.default) ? c.default : [];
        const grid = [];
        for (let r = 0; r < rows; r++) {
          const row = Array.isArray(d[r]) ? d[r] : [];
          const out = [];
          for (let k = 0; k < cols; k++) out.push(asText(row[k]));
          grid.push(out);
        }
        return grid;
      }
      case "button": return false;
      default: return c.default === undefined ? null : c.default;
    }
  }

  /** Whether `value` has the form of `like` (a control's initial value): the same type,
   * and for arrays the same length, element by element. */
  function sameForm(like, value) {
    if (Array.isArray(like)) {
      return Array.isArray(value) && value.length === like.length
        && like.every((x, i) => sameForm(x, value[i]));
    }
    if (typeof like === "number") return typeof value === "number" && Number.isFinite(value);
    return typeof value === typeof like && (like !== null || value === null);
  }

  /** The value control `c` starts with: `value` (from a shared link) if it has the form the
   * control sends (a colour as #rrggbb), else the control's initial value. */
  function presetValue(c, value) {
    const initial = initialValue(c);
    if (value === undefined || c.type === "button" || !sameForm(initial, value)) return initial;
    if (c.type === "color_selector" && !/^#[0-9a-f]{6}$/i.test(value)) return initial;
    return c.type === "color_selector" ? value.toLowerCase() : value;
  }

  function sliderBounds(c) {
    const start = finiteOr(c.start, 0);
    const end = Math.max(start, finiteOr(c.end, 100));
    const step = finiteOr(c.step, 1);
    return {start: start, end: end, step: step > 0 ? step : "any"};
  }

  function rangeInput(c, value) {
    const b = sliderBounds(c);
    const input = el("input", "cellbus-slider");
    input.type = "range";
    input.min = b.start;
    input.max = b.end;
    input.step = b.step;
    input.value = value;
    return input;
  }

  /** A text input that commits (sends) on Enter or when it loses focus changed. */
  function committingInput(className, value, commit) {
    const input = el("input", className);
    input.type = "text";
    input.value = value;
    input.spellcheck = false;
    input.autocomplete = "off";
    input.setAttribute("autocapitalize", "off");
    let committed = value;
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.isComposing) return;
      event.preventDefault();
      committed = input.value;
      commit(input.value, true);
    });
    input.addEventListener("change", () => {
      if (input.value === committed) return;
      committed = input.value;
      commit(input.value, false);
    });
    return input;
  }

  /** Control type -> function(view, name, control, id, labelId) returning
   * [node, labelled]: `labelled` true when the node (or its input) has the id `id`, so a
   * <label for> names it; otherwise the node names itself with aria-labelledby. */
  const CONTROLS = {
    slider(view, name, c, id) {
      const input = rangeInput(c, view.values[name]);
      input.id = id;
      const shown = el("output", "cellbus-control-value", input.value);
      shown.setAttribute("for", id);
      input.addEventListener("input", () => {
        shown.textContent = input.value;
        view.changed(name, Number(input.value));
      });
      const box = el("span", "cellbus-slider-box");
      box.append(input, shown);
      return [box, true];
    },
    range_slider(view, name, c, id, labelId) {
      const value = view.values[name];
      const lo = rangeInput(c, value[0]), hi = rangeInput(c, value[1]);
      lo.id = id;
      lo.setAttribute("aria-label", view.labelOf(name) + ", from");
      hi.setAttribute("aria-label", view.labelOf(name) + ", to");
      const shown = el("output", "cellbus-control-value");
      shown.setAttribute("for", id + " " + id + "-hi");
      hi.id = id + "-hi";
      const show = () => {
        const ends = [Number(lo.value), Number(hi.value)].sort((a, b) => a - b);
        shown.textContent = ends[0] + " – " + ends[1];
        return ends;
      };
      show();
      const changed = () => view.changed(name, show());
      lo.addEventListener("input", changed);
      hi.addEventListener("input", changed);
      const box = el("span", "cellbus-slider-box cellbus-range-box");
      box.setAttribute("role", "group");
      box.setAttribute("aria-labelledby", labelId);
      box.append(lo, hi, shown);
      return [box, false];
    },
    input_box(view, name, c, id) {
      const input = committingInput("cellbus-input-box", view.values[name],
                                    (text, enter) => view.changed(name, text, enter));
      input.id = id;
      if (typeof c.value_type === "string" && c.value_type !== "str") {
        input.dataset.valueType = c.value_type;
      }
      return [input, true];
    },
    checkbox(view, name, c, id) {
      const input = el("input", "cellbus-checkbox");
      input.type = "checkbox";
      input.id = id;
      input.checked = view.values[name];
      input.addEventListener("change", () => view.changed(name, input.checked));
      return [input, true];
    },
    selector(view, name, c, id, labelId) {
      const labels = Array.isArray(c.values) ? c.values.map(asText) : [];
      const current = view.values[name];
      if (c.buttons) {
        const group = el("span", "cellbus-choices");
        group.setAttribute("role", "group");
        group.setAttribute("aria-labelledby", labelId);
        const buttons = labels.map((text, i) => {
          const b = el("button", "cellbus-choice", text);
          b.type = "button";
          b.setAttribute("aria-pressed", String(i === current));
          b.addEventListener("click", () => {
            for (const other of buttons) other.setAttribute("aria-pressed", String(other === b));
            view.changed(name, i);
          });
          group.appendChild(b);
          return b;
        });
        if (buttons.length) buttons[0].id = id;
        return [group, false];
      }
      const select = el("select", "cellbus-select");
      select.id = id;
      labels.forEach((text, i) => {
        const option = el("option", null, text);
        option.value = String(i);
        select.appendChild(option);
      });
      select.selectedIndex = current < labels.length ? current : 0;
      select.addEventListener("change", () => view.changed(name, Number(select.value)));
      return [select, true];
    },
    color_selector(view, name, c, id) {
      const input = el("input", "cellbus-color");
      input.type = "color";
      input.id = id;
      input.value = view.values[name];
      const shown = el("output", "cellbus-control-value", input.value);
      shown.setAttribute("for", id);
      input.addEventListener("input", () => {
        shown.textContent = input.value;
        view.changed(name, input.value.toLowerCase());
      });
      const box = el("span", "cellbus-color-box");
      box.append(input, shown);
      return [box, true];
    },
    input_grid(view, name, c, id, labelId) {
      const grid = view.values[name];
      const table = el("table", "cellbus-grid");
      table.setAttribute("aria-labelledby", labelId);
      const body = el("tbody");
      grid.forEach((row, r) => {
        const tr = el("tr");
        row.forEach((text, k) => {
          const td = el("td");
          const input = committingInput("cellbus-grid-input", text, (value, enter) => {
            const copy = view.values[name].map((cells) => cells.slice());
            copy[r][k] = value;
            view.changed(name, copy, enter);
          });
          if (r === 0 && k === 0) input.id = id;
          input.setAttribute("aria-label",
                             view.labelOf(name) + ", row " + (r + 1) + ", column " + (k + 1));
          td.appendChild(input);
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      table.appendChild(body);
      return [table, false];
    },
    button(view, name, c, id) {
      const text = typeof c.text === "string" && c.text ? c.text : view.labelOf(name);
      const b = el("button", "cellbus-control-button", text);
      b.type = "button";
      b.id = id;
      b.addEventListener("click", () => view.send({[name]: true}));
      return [b, false];
    },
    unknown(view, name, c) {
      return [el("span", "cellbus-control-unknown",
                 "(a " + asText(c.type) + " control, which this page cannot show)"), false];
    },
  };
