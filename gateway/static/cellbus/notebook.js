  // ---- Jupyter notebooks (.ipynb): what a worksheet's layout takes of one -------------------

  /** The code and Markdown cells of a Jupyter notebook (`text`: its JSON, nbformat 4) as a
   * worksheet layout, [{id, type, code, outputs_hidden?}] numbered from 1; outputs and raw
   * cells are not taken. Throws an Error saying why for anything else. */
  function notebookLayout(text) {
    let nb;
    try { nb = JSON.parse(text); } catch (e) { nb = null; }
    if (!isObject(nb) || nb.nbformat !== 4 || !Array.isArray(nb.cells)) {
      throw new Error("not a Jupyter notebook of format 4 (an .ipynb file, JSON with "
                      + "\"nbformat\": 4 and its \"cells\")");
    }
    const cells = [];
    for (const cell of nb.cells) {
      if (!isObject(cell) || (cell.cell_type !== "code" && cell.cell_type !== "markdown")) continue;
      const source = Array.isArray(cell.source) ? cell.source.join("") : cell.source;
      if (typeof source !== "string") throw new Error("a cell of this notebook has no source text");
      const entry = {id: String(cells.length + 1), type: cell.cell_type, code: source};
      // its output hidden in Jupyter (JupyterLab's outputs_hidden, the classic collapsed):
      // hidden here once it runs, as Jupyter shows it
      const meta = isObject(cell.metadata) ? cell.metadata : {};
      if (cell.cell_type === "code" && (meta.collapsed === true
          || (isObject(meta.jupyter) && meta.jupyter.outputs_hidden === true))) {
        entry.outputs_hidden = true;
      }
      cells.push(entry);
    }
    return cells;
  }

  /** The kernel of `offered` (kernel names) a notebook (`text`, as notebookLayout takes it)
   * runs in: the cellbus kernel it names (a worksheet's download: "python", where its
   * kernelspec says "python3" for Jupyter), else its kernelspec's name ("bash", ipykernel's
   * "python3"); null if it names none of them. */
  function notebookKernel(text, offered) {
    let meta;
    try { meta = JSON.parse(text).metadata; } catch (e) { meta = null; }
    if (!isObject(meta)) return null;
    const names = [isObject(meta.cellbus) ? meta.cellbus.kernel : null,
                   isObject(meta.kernelspec) ? meta.kernelspec.name : null];
    return names.find((name) => typeof name === "string" && offered.includes(name)) || null;
  }

  /** The kernel a notebook (`text`) names, for when it is not offered: {name, display,
   * language} from its kernelspec (its language_info's name for a missing name or
   * language), or null if it names none (it opens in the worksheet's default kernel). */
  function notebookKernelName(text) {
    let meta;
    try { meta = JSON.parse(text).metadata; } catch (e) { meta = null; }
    const spec = isObject(meta) && isObject(meta.kernelspec) ? meta.kernelspec : {};
    const info = isObject(meta) && isObject(meta.language_info) ? meta.language_info : {};
    const word = (value) => (typeof value === "string" && value ? value : null);
    const language = word(spec.language) || word(info.name);
    const name = word(spec.name) || language;
    if (!name) return null;
    return {name: name, display: word(spec.display_name) || name,
            language: language ? language.toLowerCase() : null};
  }
