// ESLint for the SDK (`npm run lint`; `make lint` runs it in CI): the recommended rules of
// ESLint and typescript-eslint over the sources, tests, examples and scripts (tsc --strict,
// `npm run typecheck`, does the type checking).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "src/generated/**", ".examples-out/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["scripts/**/*.mjs", "integration/**/*.mjs"],
    languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly" } },
  },
);
