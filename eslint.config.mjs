// ESLint for the project's JavaScript (`./run.sh check`; installed with the browser tests
// in dev/e2e). No plugins: the rules that catch real mistakes in code without a build step.
const rules = {
  "no-undef": "error",
  "no-unused-vars": ["error", { args: "none", caughtErrors: "none" }],
  "no-redeclare": "error",
  "no-dupe-keys": "error",
  "no-unreachable": "error",
  "no-const-assign": "error",
  "no-import-assign": "error",
  "no-self-assign": "error",
  "no-shadow-restricted-names": "error",
  "eqeqeq": ["error", "smart"],
  "no-var": "error",
  "prefer-const": "error",
};

const shared = ["console", "setTimeout", "clearTimeout", "setInterval", "clearInterval", "URL", "URLSearchParams",
  "TextEncoder", "TextDecoder", "AbortController", "structuredClone", "queueMicrotask", "crypto", "fetch"];
const browser = ["window", "document", "navigator", "location", "WebSocket", "requestAnimationFrame", "Intl",
  "HTMLElement", "Event", "localStorage", "sessionStorage"];
const node = ["process", "Buffer", "__dirname", "require", "module"];
const globals = (names) => Object.fromEntries(names.map((n) => [n, "readonly"]));

export default [
  { ignores: ["**/node_modules/**", "dev/e2e/out/**", "target/**"] },
  {
    files: ["web/**/*.js"],
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: globals([...shared, ...browser]) },
    rules,
  },
  {
    files: ["dev/**/*.mjs", "dev/**/*.js"],
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: globals([...shared, ...browser, ...node]) },
    rules,
  },
  {
    files: ["bench/peers/**/*.js"],
    languageOptions: { ecmaVersion: 2023, sourceType: "commonjs", globals: globals([...shared, ...node]) },
    rules,
  },
];
