  // ---- math: LaTeX in Markdown and in text/latex output, by KaTeX -------------------------

  // KaTeX (pinned in package.json, served from static/vendor/katex/ with its style sheet and
  // fonts) is loaded the first time a formula is shown. In Markdown, math is taken out of
  // the source before marked sees it (as Jupyter does: `_` and `*` in TeX are not emphasis)
  // and leaves a mark that marked and DOMPurify keep as text; once DOMPurify has done its
  // job, each mark becomes KaTeX's rendering of its TeX. KaTeX's own output is put in after
  // the sanitizer because it needs style attributes; with trust false it carries no link,
  // no id, no class of the user's, nothing that runs.
  //
  // What is math: $$...$$ and \\[...\\] (display), \\(...\\) (inline), and $...$ by pandoc's
  // rule, so that a price is not math: the opening $ has a non-space right after it, the
  // closing one a non-space right before it and no digit right after it ("costs $5 and $6"
  // stays text). None runs over a blank line. Code keeps its $: fenced blocks and code spans
  // are skipped, and a mark that lands in code (an indented block) gets its source back; \$
  // is a dollar. In Markdown, as in JupyterLab 4, the brackets are doubled: its math takes
  // \\( and \\[ only, so \( and \[ stay Markdown's escapes of ( and [ ("see \[note\]" is
  // "see [note]"); in text/latex output, which is LaTeX, \( and \[ are math.
  const mathScan = (slashes) => new RegExp([
    /^ {0,3}(`{3,}|~{3,})[^\n]*\n[\s\S]*?(?:^ {0,3}\1[`~]*[ \t]*$|(?![\s\S]))/.source,
    /(`+)(?:[^`]|[^`][\s\S]*?[^`])\2(?!`)/.source,
    /\$\$((?:(?!\n[ \t]*\n)[^$])+?)\$\$/.source,
    slashes + /\[((?:(?!\n[ \t]*\n)[\s\S])+?)/.source + slashes + /\]/.source,
    slashes + /\(((?:(?!\n[ \t]*\n)[\s\S])+?)/.source + slashes + /\)/.source,
    /\\[\\$`]/.source,
    /\$(?=[^\s$])((?:\\[^\n]|[^\\$\n]|\n(?![ \t]*\n))*?[^\s\\])\$(?!\d)/.source,
  ].join("|"), "gm");
  const MATH_SCAN = {markdown: mathScan(/\\\\/.source), latex: mathScan(/\\\\?/.source)};
  const MATH_MARK = /\uE000(\d+)\uE001/g;  // private-use characters, taken out of the source
  const MATH_MARKS = /[\uE000\uE001]/g;
  // A mark in an attribute: a link's URL (marked percent-encodes it there), a title.
  const MATH_MARK_ATTR = /(?:\uE000|%EE%80%80)(\d+)(?:\uE001|%EE%80%81)/gi;
  const KATEX_OPTIONS = {trust: false, strict: "ignore", output: "htmlAndMathml"};

  /** Markdown `source` (text/latex's with `latex`) with its math replaced by marks: {text,
   * math: [{tex, display, source}]}, `source` being the formula with its delimiters, as
   * written. */
  function splitMath(source, latex) {
    const math = [];
    const scan = latex ? MATH_SCAN.latex : MATH_SCAN.markdown;
    const text = source.replace(MATH_MARKS, "").replace(scan,
      (whole, fence, ticks, dollars, bracket, paren, dollar) => {
        const display = dollars !== undefined || bracket !== undefined;
        const tex = [dollars, bracket, paren, dollar].find((t) => t !== undefined);
        if (tex === undefined) return whole;  // code, or an escape
        math.push({tex: tex, display: display, source: whole});
        return "\uE000" + (math.length - 1) + "\uE001";
      });
    return {text: text, math: math};
  }

  /** A Promise of KaTeX (its style sheet asked for too), or of null if it cannot load. */
  function katexScript() {
    vendorStyle("vendor/katex/katex.min.css");
    return vendorScript("vendor/katex/katex.min.js", "katex");
  }

  /** Add the style sheet static/`path` to the page once. */
  function vendorStyle(path) {
    const href = resolve(path);
    if (!href || document.querySelector('link[data-cellbus-vendor="' + path + '"]')) return;
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    link.dataset.cellbusVendor = path;
    (document.head || document.documentElement).appendChild(link);
  }

  /** A node showing `tex` rendered by `katex` (null: not loaded): a bad formula shows its
   * source in KaTeX's error colour, with the error as its title, when `strict` is false;
   * with `strict`, an error throws. */
  function mathNode(katex, tex, display, strict) {
    const node = el("span", "cellbus-math");
    katex.render(tex, node, Object.assign({displayMode: display, throwOnError: strict},
                                          KATEX_OPTIONS));
    return node;
  }

  /** Replace the marks in the text of `root` (made by marked and DOMPurify from splitMath's
   * text) by `math` rendered with `katex`, or by their source where KaTeX is not loaded or
   * the mark is in code; in an attribute, by its source (percent-encoded in a URL, where
   * it cannot make a scheme: a formula's source starts with $ or a backslash). A mark of
   * no formula stays as it is: the author wrote it (percent-encoded, or as a character
   * reference in raw HTML, which splitMath cannot take out), and taking it out would join
   * what DOMPurify saw apart: `java%EE%80%809%EE%80%81script:` passed as a relative URL and
   * became a javascript: link that ran in the page when clicked. */
  function putMath(root, math, katex) {
    if (!math.length) return;
    for (const element of root.querySelectorAll("*")) {
      for (const attr of element.attributes) {
        const url = attr.name === "href" || attr.name === "src";
        const value = attr.value.replace(MATH_MARK_ATTR, (whole, n) => {
          const formula = math[Number(n)];
          if (!formula) return whole;
          return url ? encodeURIComponent(formula.source) : formula.source;
        });
        if (value !== attr.value) attr.value = value;
      }
    }
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const marked = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.data.includes("\uE000")) marked.push(node);
    }
    for (const node of marked) {
      const inCode = node.parentElement && node.parentElement.closest("code, pre");
      const parts = node.data.split(MATH_MARK);  // text, index, text, index, ..., text
      const fragment = document.createDocumentFragment();
      parts.forEach((part, i) => {
        const formula = i % 2 ? math[Number(part)] : null;
        if (!formula) {
          if (part) fragment.appendChild(document.createTextNode(part));
        } else if (!katex || inCode) {
          fragment.appendChild(document.createTextNode(formula.source));
        } else {
          fragment.appendChild(safeMath(katex, formula));
        }
      });
      node.replaceWith(fragment);
    }
  }

  /** mathNode of a formula of Markdown, or its source if KaTeX fails in a way it does not
   * report as a bad formula. */
  function safeMath(katex, formula) {
    try {
      return mathNode(katex, formula.tex, formula.display, false);
    } catch {
      return el("span", "cellbus-math", formula.source);
    }
  }

  /** Show text/latex output `block` in `node` (IPython's Math and Latex, sympy): its source
   * at once, then KaTeX's rendering; if KaTeX cannot load or parse it, the object's
   * text/plain repr (`block.plain`) when it has one. A formula in $ or \( is inline, in $$
   * or \[ display, and text without delimiters is one display formula (\begin{align}...). */
  function showLatex(node, block) {
    node.textContent = block.content;
    return katexScript().then((katex) => {
      const {text, math} = splitMath(block.content.trim(), true);
      try {
        if (!katex) throw new Error("KaTeX did not load");
        if (!math.length) {
          node.replaceChildren(mathNode(katex, text, true, true));
          return;
        }
        const fragment = document.createDocumentFragment();
        text.split(MATH_MARK).forEach((part, i) => {
          const formula = i % 2 ? math[Number(part)] : null;
          fragment.appendChild(formula ? mathNode(katex, formula.tex, formula.display, true)
                               : document.createTextNode(part));
        });
        node.replaceChildren(fragment);
      } catch {
        if (typeof block.plain === "string") node.textContent = block.plain;
      }
    });
  }
