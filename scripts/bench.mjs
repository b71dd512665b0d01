// `npm run bench`: runs every package's benchmarks (vitest bench, i.e. tinybench) with one harness,
// keeps the raw JSON in bench-results/ and docs/benchmarks.json, and writes the Markdown table
// docs/benchmarks.md, followed by the extra measurements benchmarks wrote to bench-results/. Extra arguments are passed to vitest (for example a path filter).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const rawFile = path.join(root, "bench-results", "bench.json");
mkdirSync(path.dirname(rawFile), { recursive: true });
const startedAt = Date.now();

const run = spawnSync(
  "npx",
  ["vitest", "bench", "--run", "--project", "unit", "--outputJson", rawFile, ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit" },
);
if (run.status !== 0) {
  console.error(`bench: vitest bench exited with ${run.status}`);
  process.exit(run.status ?? 1);
}

const raw = JSON.parse(readFileSync(rawFile, "utf8"));
const rows = [];
for (const file of raw.files ?? []) {
  const rel = path.relative(root, file.filepath);
  const pkg = rel.split(path.sep)[1] ?? rel;
  for (const group of file.groups ?? []) {
    for (const b of group.benchmarks ?? []) {
      rows.push({
        file: rel,
        pkg,
        group: group.fullName.replace(/^.*?> /, ""),
        name: b.name,
        hz: b.hz,
        mean: b.mean,
        p99: b.p99,
        rme: b.rme,
        samples: b.sampleCount ?? b.samples?.length ?? 0,
      });
    }
  }
}
if (rows.length === 0) {
  console.error("bench: no benchmark ran");
  process.exit(1);
}
// vitest reports a benchmark whose function threw as a row without samples and still exits 0.
const failed = rows.filter((r) => r.samples === 0);
if (failed.length > 0) {
  for (const r of failed)
    console.error(
      `bench: ${r.pkg} > ${r.group} > ${r.name}: no samples (it threw; run its file alone to see why)`,
    );
  process.exit(1);
}

// Benchmarks that measure more than a timing (per-pod latency percentiles, RSS, heap, API writes)
// write their own JSON into bench-results/; the ones written by this run are listed below the table.
const extras = [];
for (const name of readdirSync(path.dirname(rawFile)).sort()) {
  const file = path.join(path.dirname(rawFile), name);
  if (name === path.basename(rawFile) || !name.endsWith(".json")) continue;
  if (statSync(file).mtimeMs < startedAt) continue;
  extras.push({ name: name.replace(/\.json$/, ""), data: JSON.parse(readFileSync(file, "utf8")) });
}

/** Flattens a JSON value into `a.b.c = value` rows. */
function flatten(value, prefix = "", out = []) {
  if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.push([prefix, value]);
  }
  return out;
}

/**
 * A benchmark's own results: its `table` ({ title, columns, rows }) when it gives one, else every
 * value of its JSON as `path | value`.
 */
function extraSection(e) {
  const source = `Measured by the benchmark itself (\`bench-results/${e.name}.json\`).`;
  const t = e.data?.table;
  if (t && Array.isArray(t.columns) && Array.isArray(t.rows)) {
    return [
      `## ${t.title ?? e.name}`,
      "",
      source,
      "",
      `| ${t.columns.join(" | ")} |`,
      `|${t.columns.map((_, i) => (i ? "---:" : "---")).join("|")}|`,
      ...t.rows.map((r) => `| ${r.join(" | ")} |`),
      "",
    ];
  }
  return [
    `## ${e.name}`,
    "",
    source,
    "",
    "| measurement | value |",
    "|---|---:|",
    ...flatten(e.data).map(([k, v]) => `| ${k} | ${typeof v === "number" ? +v.toFixed(3) : String(v)} |`),
    "",
  ];
}

const ms = (v) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(4));
const date = new Date().toISOString();
for (const r of rows) r.date = date;

// A run of some benchmarks only (a path filter) keeps the earlier results of the others, each
// with the date it was measured, so that docs/benchmarks.md always lists every benchmark.
const previousFile = path.join(root, "docs", "benchmarks.json");
if (existsSync(previousFile)) {
  const previous = JSON.parse(readFileSync(previousFile, "utf8"));
  const ranFiles = new Set(rows.map((r) => r.file));
  const ranPackages = new Set(rows.map((r) => r.pkg));
  for (const r of previous.rows ?? []) {
    // Rows of a file that ran are replaced; rows from before files were recorded, when their package ran.
    if (r.file !== undefined ? ranFiles.has(r.file) : ranPackages.has(r.pkg)) continue;
    rows.push({ ...r, date: r.date ?? previous.date });
  }
  const written = new Set(extras.map((e) => e.name));
  for (const e of previous.extras ?? []) if (!written.has(e.name)) extras.push(e);
  rows.sort((a, b) => (a.pkg === b.pkg ? 0 : a.pkg < b.pkg ? -1 : 1));
  extras.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
const lines = [
  "# Benchmarks",
  "",
  `Generated by \`npm run bench\` (last run ${date}, ${machine}); each row says when it was measured.`,
  "Times are per iteration of the benchmark body, in milliseconds; rme is the relative margin of error.",
  "Raw results: `docs/benchmarks.json`.",
  "",
  "| package | group | benchmark | ops/s | mean ms | p99 ms | ±rme | samples | measured |",
  "|---|---|---|---:|---:|---:|---:|---:|---|",
  ...rows.map(
    (r) =>
      `| ${r.pkg} | ${r.group} | ${r.name} | ${r.hz.toFixed(1)} | ${ms(r.mean)} | ${ms(r.p99)} | ${r.rme.toFixed(1)}% | ${r.samples} | ${r.date.slice(0, 10)} |`,
  ),
  "",
  ...extras.flatMap((e) => extraSection(e)),
];
writeFileSync(path.join(root, "docs", "benchmarks.md"), lines.join("\n"));
writeFileSync(
  path.join(root, "docs", "benchmarks.json"),
  JSON.stringify({ date, machine, rows, extras }, null, 2) + "\n",
);
console.log(`bench: ${rows.length} benchmarks written to docs/benchmarks.md`);
