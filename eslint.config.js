// eslint's configuration for the browser client (bin/test runs it: npx eslint).
// cellbus.js is plain ES2020 in one classic script (no modules, no build step), so the
// rules are eslint's recommended set plus a few that catch what review kept finding. Its
// parts (gateway/static/cellbus/) are pieces of one function, linted as the script the
// gateway makes of them: `python -m gateway.script | eslint --stdin` (bin/test).
"use strict";
const js = require("@eslint/js");
const globals = require("globals");

module.exports = [
  {ignores: ["gateway/static/vendor/",  // third-party code, served as npm ships it
             "gateway/static/cellbus/"]},  // see above
  {
    files: ["gateway/static/**/*.js"],
    ...js.configs.recommended,
    languageOptions: {
      ecmaVersion: 2020,
      sourceType: "script",
      globals: {...globals.browser},
    },
    rules: {
      ...js.configs.recommended.rules,
      "no-unused-vars": ["error", {args: "none", caughtErrors: "none"}],
      "no-control-regex": "off",  // ANSI escapes are what some regexes look for
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
      "no-shadow": "off",
      strict: ["error", "function"],
    },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: {sourceType: "commonjs", globals: {...globals.node}},
  },
];
