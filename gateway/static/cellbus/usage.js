  // ---- usage and permalinks (issue 24): self-contained helpers ---------------------------

  /** Show, discreetly under `cell`, what its run used (`usage`: its execute_reply's
   * metadata.usage, or /update's "usage"); anything else removes the line. */
  function showUsage(cell, usage) {
    let line = cell.element.querySelector(":scope > .cellbus-usage");
    if (!isObject(usage)) {
      if (line) line.remove();
      return;
    }
    if (!line) {
      line = el("div", "cellbus-usage");
      line.style.cssText = "color: var(--cellbus-muted, #6e7781); font-size: 0.75em; margin-top: 0.2em";
      cell.element.appendChild(line);
    }
    const n = (x) => (typeof x === "number" && isFinite(x) && x > 0 ? x : 0);
    const time = (x) => (n(x) < 1 ? Math.round(n(x) * 1000) + " ms" : n(x).toFixed(2) + " s");
    line.textContent = "CPU " + time(usage.cpu_seconds) + " · wall " + time(usage.wall_seconds)
      + " · peak memory " + sizeText(n(usage.peak_memory_bytes)) + " · output "
      + sizeText(n(usage.output_bytes)) + " · processes " + n(usage.processes);
  }

  /** Code shared by link: `?q=ID` (a stored permalink) or `?z=...` (zlib + base64url code in
   * the URL, as SageMathCell's); null if the query names none. Rejects with an Error saying
   * why a link cannot be opened. */
  async function sharedCode(query, server) {
    const link = await sharedLink(query, server);
    return link && link.code;
  }

  /** What a link shares: {code, interact: the interact's values by name, or null} (see
   * sharedCode), or null if the query names none. */
  async function sharedLink(query, server) {
    const base = server || DEFAULT_SERVER;
    if (query.get("q")) {
      const response = await fetch(base + "permalink/" + encodeURIComponent(query.get("q")),
                                   {credentials: "same-origin"});
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || "this permalink cannot be opened");
      return {code: body.code, interact: isObject(body.interact) ? body.interact : null};
    }
    if (!query.get("z")) return null;
    let code;
    try {
      const b64 = query.get("z").replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)),
                                    (c) => c.charCodeAt(0));
      code = await inflated(bytes, SHARED_CODE_MAX);
    } catch (e) {  // the browser's own words ("Failed to execute 'atob'...") say nothing here
      throw new Error("this link's code (?z=) is damaged: it is not the compressed code a "
                      + "shared link holds; ask for the link again");
    }
    if (code === null) {
      throw new Error("this link's code (?z=) is over " + sizeText(SHARED_CODE_MAX)
                      + ", more than a cell takes: share long code as a permalink (Share)");
    }
    return {code: code, interact: null};
  }

  // The most code a ?z= link opens: a link of 54 KB inflated to 40 MiB of code, which held
  // the page's thread for 45 s on its way into a cell, though the gateway runs no input over
  // its --max-input (1 MiB unless the operator says more). Longer code travels as a permalink.
  const SHARED_CODE_MAX = 1024 * 1024;

  /** The UTF-8 text that deflate `bytes` inflate to, or null past `max` bytes (inflating
   * stops there). */
  async function inflated(bytes, max) {
    const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"))
      .getReader();
    const parts = [];
    let size = 0;
    for (let part = await reader.read(); !part.done; part = await reader.read()) {
      size += part.value.length;
      if (size > max) {
        reader.cancel();
        return null;
      }
      parts.push(part.value);
    }
    return new TextDecoder().decode(await new Blob(parts).arrayBuffer());
  }

  /** Store `code` (and `interact`, its interact's values by name: Cell.interactValues) as a
   * permalink, copy its URL to the clipboard where the browser lets us, and return the URL. */
  async function share(code, server, interact) {
    const base = server || DEFAULT_SERVER;
    const response = await fetch(base + "permalink", {
      method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({code: code, interact: isObject(interact) ? interact : null}),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || "the permalink could not be made");
    const url = new URL(body.url, base).href;
    try { await navigator.clipboard.writeText(url); } catch (e) { /* not allowed: shown only */ }
    return url;
  }
