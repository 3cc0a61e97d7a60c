// Validates an AsyncAPI document with the official parser (@asyncapi/parser, pinned in
// package-lock.json) and prints its diagnostics as JSON: [{severity, code, message, path}].
// severity: 0 error, 1 warning, 2 information, 3 hint. Exit status 1 when there is an error.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: file });
const out = diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
console.log(JSON.stringify({ valid: Boolean(document), version: document?.version() ?? null, diagnostics: out }));
process.exit(document ? 0 : 1);
