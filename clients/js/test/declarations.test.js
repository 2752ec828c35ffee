// src/index.d.ts declares exactly what src/index.js exports.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

import * as runtime from "../src/index.js";

const declarations = await readFile(new URL("../src/index.d.ts", import.meta.url), "utf8");

/** Names of `export declare class|function|const|let|var|enum X` (values, not types). */
function declaredValues(source) {
  const pattern =
    /^export\s+(?:declare\s+)?(?:abstract\s+)?(class|function|const|let|var|enum)\s+([A-Za-z_$][\w$]*)/gm;
  return [...source.matchAll(pattern)].map((m) => m[2]).sort();
}

test("every runtime export is declared, and every declared value exists at runtime", () => {
  assert.deepEqual(declaredValues(declarations), Object.keys(runtime).sort());
});

test("the declarations use no `export {...}` or `export default` that the check above would miss", () => {
  assert.doesNotMatch(declarations, /^export\s*(\{|default\b|\*)/m);
});

test("package.json points types and exports at the files checked here", async () => {
  const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.type, "module");
  assert.equal(pkg.types, "./src/index.d.ts");
  assert.deepEqual(pkg.exports["."], { types: "./src/index.d.ts", default: "./src/index.js" });
  assert.equal(pkg.dependencies, undefined, "no runtime dependencies");
});
