#!/usr/bin/env node
// Our solc: the npm solc-js compiler behind the command line of native solc, for what
// py-solc-x and ape-solidity ask of it (`--version`, `--standard-json` with `--base-path`,
// `--include-path`, `--allow-paths`). No native solc reaches this machine.
"use strict";

const fs = require("fs");
const path = require("path");

const USAGE =
  "solc (solc-js shim): supports --version and --standard-json " +
  "[--base-path P] [--include-path P]... [--allow-paths P[,P]...]";

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, basePath: null, includePaths: [], allowPaths: [] };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value = null;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const takeValue = () => {
      if (value !== null) return value;
      if (i + 1 >= argv.length) fail(`option ${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case "--version":
        opts.version = true;
        break;
      case "--standard-json":
        opts.standardJson = true;
        break;
      case "--base-path":
        opts.basePath = takeValue();
        break;
      case "--include-path":
        opts.includePaths.push(takeValue());
        break;
      case "--allow-paths":
        opts.allowPaths.push(...takeValue().split(",").filter(Boolean));
        break;
      case "--help":
        process.stdout.write(USAGE + "\n");
        process.exit(0);
        break;
      default:
        fail(`unsupported argument ${JSON.stringify(arg)}. ${USAGE}`);
    }
  }
  return opts;
}

function fail(message) {
  process.stderr.write(`Error: ${message}\n`);
  process.exit(1);
}

// Native solc resolves an import's source unit name against the base path, then each
// include path, in that order; with no base path the name is taken relative to the
// working directory. --allow-paths only widens what may be read; we read what resolves.
function makeImportCallback(opts) {
  const roots = [opts.basePath || ""].concat(opts.includePaths);
  return function findImports(sourceUnitName) {
    const candidates = path.isAbsolute(sourceUnitName)
      ? [sourceUnitName]
      : roots.map((root) => path.resolve(root || process.cwd(), sourceUnitName));
    for (const candidate of candidates) {
      try {
        return { contents: fs.readFileSync(candidate, "utf8") };
      } catch (err) {
        if (err.code !== "ENOENT" && err.code !== "EISDIR") return { error: String(err) };
      }
    }
    return { error: `File not found. Searched the following locations: ${candidates.join(", ")}` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const solc = require(require.resolve("solc", { paths: [path.join(__dirname, "..")] }));
  if (opts.version) {
    process.stdout.write(
      "solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n",
    );
    return;
  }
  if (!opts.standardJson) fail(USAGE);
  const input = fs.readFileSync(0, "utf8");
  process.stdout.write(solc.compile(input, { import: makeImportCallback(opts) }) + "\n");
}

main();
