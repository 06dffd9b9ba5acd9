/* cellbus.js: the browser client of a cellbus gateway. Plain JavaScript, no build step.
 *
 *   <script src="/static/cellbus.js"></script>
 *   <div id="cell"></div>
 *   <script>cellbus.makeCell(document.getElementById("cell"), {code: "print(1 + 1)"});</script>
 *
 * One script for an embedder to add and read (README: Using it). The gateway serves it as
 * the files of its static/cellbus/ folder, in this order, inside one function (see
 * gateway/script.py); each file's part starts with a "// -- file" line:
 *   helpers.js    DOM and text helpers; ANSI colours (ansi_up from static/vendor/, loaded
 *                 when first needed); Markdown (marked and DOMPurify from there too)
 *   math.js       LaTeX math in Markdown and text/latex output, by KaTeX (static/vendor/
 *                 katex/, loaded when first needed)
 *   fold.js       one request's Jupyter messages -> output blocks (mirrors protocol/fold.py)
 *   textview.js   a text block however long: first and last lines, "N lines hidden", all a
 *                 click away
 *   renderers.js  HTML output in sandboxed iframes (script runs, but not in the page's
 *                 origin); block type -> function(block, render, cell) -> DOM node, which
 *                 OutputView keeps on screen
 *   interactcontrols.js  an @interact's controls: the value each starts with (or a shared
 *                 link's), and the element of each control type
 *   interact.js   InteractView: an @interact's controls (built once) and its output under
 *                 them; a change sends an interact_request, and each run's output replaces
 *                 the last
 *   poll.js       PollTransport: the HTTP API (POST evaluate, long-poll update, POST
 *                 complete), each answer read whole
 *   channel.js    Channel, the WebSocket transport: one socket per page and gateway, shared
 *                 by all cells; subscribes to each worksheet with the last seq seen,
 *                 reconnects with backoff, and hands every cell to its PollTransport when no
 *                 WebSocket gets through. Both have one interface (evaluate, interrupt,
 *                 interact, restart, complete, follow, document, register, unregister, forget): a Cell
 *                 knows no transport
 *   channelin.js  Channel's incoming messages: replies to the page's requests, and the
 *                 subscribed worksheets' output, each to the cells it is for
 *   channelsizes.js  Channel's messages too big for the gateway (its limits, a 1009 close):
 *                 the request fails once, saying so, and is never sent again
 *   channelstart.js  Channel's completions, and a worksheet's session started by a run of
 *                 nothing (a completion before the first run, Keep)
 *   editor.js     the code box's Tab, Shift+Tab and Enter; CodeMirror 5 on it when the page
 *                 loaded it (static/vendor/codemirror/), in the kernel's language
 *   cell.js       Cell: its options, state and life (evaluate, interrupt, destroy), what its
 *                 transport tells it; shows its stored output after a reload (restore)
 *   cellview.js   Cell's elements: code box, Evaluate button, execution number, working
 *                 indicator, the no-output notice, status, and the output area (class
 *                 "cellbus-output"), drawn once per animation frame; sends cellbus:status,
 *                 cellbus:count, cellbus:session, cellbus:idle, cellbus:closed, cellbus:started,
 *                 cellbus:type and cellbus:rendered events
 *   celltype.js   Cell's type (a Markdown cell is rendered in place and never sent), its
 *                 kernel's language, its keys (Shift+Enter; Escape then M, Y, A, B)
 *   cellinteracts.js  Cell's @interacts: presets, what their controls send, each run's
 *                 output routed into the cell's output
 *   usage.js      what a run used, and permalinks (share a cell's code as a link)
 *   session.js    SessionBar: a worksheet's session (its state, gone: why, a warning before
 *                 its idle timeout with Keep) and its Restart button
 *   notebook.js   Jupyter notebooks (.ipynb): the cells and the kernel a worksheet takes
 *                 of one
 *   sheetedits.js  a worksheet's cell edits by Jupyter's command keys: delete and Escape
 *                 then Z, copy, cut and paste (Escape then C, X, V)
 *   layoutstore.js  a worksheet page's cells kept in the store (its layout) and in this
 *                 browser: saves, conflicts with other pages, another page's runs followed
 *   runall.js     a worksheet's Run all, Run above, Run below and Restart & run all (as
 *                 Jupyter's: in order, stopping at the first error; a reload goes on)
 *   worksheet.js  makeCell, makeWorksheet (cells that share a session; another page's runs
 *                 in them followed) and the public API on window.cellbus
 */
