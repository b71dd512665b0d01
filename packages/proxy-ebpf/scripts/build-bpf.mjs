#!/usr/bin/env node
// Compiles the eBPF socket load balancer (bpf/sock_lb.c) into dist/bpf/sock_lb.o.
//
//   npm run build -w @worknode/proxy-ebpf     # tsup, then this script
//   node scripts/build-bpf.mjs                # this step alone
//
// Needs clang with the BPF target (Debian: clang, libbpf-dev for <bpf/bpf_helpers.h>). The kernel
// UAPI headers live under /usr/include/<multiarch> on Debian, so that directory (from
// `gcc -print-multiarch`, x86_64-linux-gnu when gcc is missing) is added to the include path.
// CLANG overrides the compiler binary. Every program is spawned with an argument array; any failure
// exits non-zero with a message saying what to do.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SOURCE = path.join(PACKAGE_DIR, "bpf", "sock_lb.c");
const OUTPUT_DIR = path.join(PACKAGE_DIR, "dist", "bpf");
const OUTPUT = path.join(OUTPUT_DIR, "sock_lb.o");
const DEFAULT_MULTIARCH = "x86_64-linux-gnu";

/** Prints a message to stderr and exits non-zero. */
function fail(message) {
  process.stderr.write(`build-bpf: ${message}\n`);
  process.exit(1);
}

/** The Debian multiarch tuple (e.g. x86_64-linux-gnu), from gcc or the fallback. */
function multiarch() {
  const result = spawnSync("gcc", ["-print-multiarch"], { encoding: "utf8" });
  const tuple = result.status === 0 ? result.stdout.trim() : "";
  return tuple === "" ? DEFAULT_MULTIARCH : tuple;
}

const clang = process.env.CLANG ?? "clang";
const args = [
  "-O2",
  "-g",
  "-Wall",
  "-target",
  "bpf",
  `-I/usr/include/${multiarch()}`,
  "-c",
  SOURCE,
  "-o",
  OUTPUT,
];

mkdirSync(OUTPUT_DIR, { recursive: true });
const result = spawnSync(clang, args, { stdio: "inherit" });
if (result.error) {
  if (result.error.code === "ENOENT") {
    fail(
      `'${clang}' not found: the eBPF program needs clang with the BPF target ` +
        "(Debian/Ubuntu: apt-get install clang libbpf-dev), or set CLANG to its path",
    );
  }
  fail(`could not run '${clang}': ${result.error.message}`);
}
if (result.signal) {
  fail(`'${clang}' was killed by ${result.signal} while compiling ${path.relative(PACKAGE_DIR, SOURCE)}`);
}
if (result.status !== 0) {
  fail(
    `compiling ${path.relative(PACKAGE_DIR, SOURCE)} failed (${clang} exited with ${result.status}); ` +
      `command: ${clang} ${args.join(" ")}`,
  );
}
process.stdout.write(`build-bpf: wrote ${path.relative(PACKAGE_DIR, OUTPUT)}\n`);
