// Regenerates src/generated/openapi.ts from the committed docs/openapi.yaml, or with --check
// fails (exit 1) when the committed types are stale. One place holds the generator's options,
// so `npm run generate` and the CI check can never disagree about what "fresh" means.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "node_modules", "openapi-typescript", "bin", "cli.js");
const args = [
  cli,
  join(root, "..", "..", "docs", "openapi.yaml"),
  "--output", join(root, "src", "generated", "openapi.ts"),
  // Request fields with a server-side default (time_in_force, post_only, stp) stay optional.
  "--default-non-nullable", "false",
  ...process.argv.slice(2),
];
const result = spawnSync(process.execPath, args, { stdio: "inherit", cwd: root });
if (result.status !== 0 && process.argv.includes("--check")) {
  console.error("src/generated/openapi.ts is stale against docs/openapi.yaml: run `npm run generate` (or `make sdk-generate`) and commit it.");
}
process.exit(result.status ?? 1);
