#!/usr/bin/env node
// Compiles the eBPF programs of the package into dist/bpf:
//   - bpf/sock_lb.c      → dist/bpf/sock_lb.o      (the socket load balancer: cgroup hooks)
//   - bpf/sock_destroy.c → dist/bpf/sock_destroy.o (socket termination: an iter/udp program)
//
//   npm run build -w @worknode/proxy-ebpf     # tsup, then this script
//   node scripts/build-bpf.mjs                # this step alone
//
// Needs clang with the BPF target (Debian: clang, libbpf-dev for <bpf/bpf_helpers.h>). The kernel
// UAPI headers live under /usr/include/<multiarch> on Debian, so that directory (from
// `gcc -print-multiarch`, x86_64-linux-gnu when gcc is missing) is added to the include path.
// sock_destroy.c reads kernel structs with CO-RE, from a vmlinux.h generated here into dist/bpf
// (never committed) with `bpftool btf dump file <BTF> format c`; the BTF is the build machine's
// /sys/kernel/btf/vmlinux (VMLINUX_BTF overrides it; CO-RE relocates to the running kernel at load).
// It is removed after a successful build, so that the package (which ships dist) does not carry
// the build machine's kernel headers; a failed build leaves it for inspection.
// CLANG and BPFTOOL override the binaries. Every program is spawned with an argument array; any
// failure exits non-zero with a message saying what to do.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUTPUT_DIR = path.join(PACKAGE_DIR, "dist", "bpf");
const VMLINUX_H = path.join(OUTPUT_DIR, "vmlinux.h");
const DEFAULT_MULTIARCH = "x86_64-linux-gnu";
/** The objects: source in bpf/, output in dist/bpf/, and whether it needs vmlinux.h. */
const OBJECTS = [
  { source: "sock_lb.c", output: "sock_lb.o", vmlinux: false },
  { source: "sock_destroy.c", output: "sock_destroy.o", vmlinux: true },
];

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

/** Fails unless a spawnSync result is a clean exit; `what` says what was being done. */
function checkResult(result, program, what, hint) {
  if (result.error) {
    if (result.error.code === "ENOENT") fail(`'${program}' not found: ${hint}`);
    fail(`could not run '${program}': ${result.error.message}`);
  }
  if (result.signal) fail(`'${program}' was killed by ${result.signal} while ${what}`);
  if (result.status !== 0) fail(`${what} failed ('${program}' exited with ${result.status})`);
}

mkdirSync(OUTPUT_DIR, { recursive: true });

for (const { source } of OBJECTS) {
  const file = path.join(PACKAGE_DIR, "bpf", source);
  if (!existsSync(file)) fail(`${path.relative(PACKAGE_DIR, file)} is missing`);
}

// vmlinux.h for the CO-RE object.
const bpftool = process.env.BPFTOOL ?? "bpftool";
const btf = process.env.VMLINUX_BTF ?? "/sys/kernel/btf/vmlinux";
if (!existsSync(btf)) {
  fail(
    `${btf} is missing: sock_destroy.c needs the kernel's BTF to generate vmlinux.h ` +
      "(a kernel with CONFIG_DEBUG_INFO_BTF=y), or set VMLINUX_BTF to a vmlinux file with BTF",
  );
}
const dump = spawnSync(bpftool, ["btf", "dump", "file", btf, "format", "c"], {
  encoding: "utf8",
  maxBuffer: 512 * 1024 * 1024,
  stdio: ["ignore", "pipe", "inherit"],
});
checkResult(
  dump,
  bpftool,
  `generating vmlinux.h from ${btf}`,
  "it is needed to generate vmlinux.h (Debian/Ubuntu: apt-get install bpftool, " +
    "or linux-tools-common), or set BPFTOOL to its path",
);
if (!dump.stdout.includes("struct bpf_iter__udp {")) {
  fail(`${btf} has no struct bpf_iter__udp: the kernel is too old for socket termination (needs >= 6.5)`);
}
writeFileSync(VMLINUX_H, dump.stdout);

const clang = process.env.CLANG ?? "clang";
const clangHint =
  "the eBPF programs need clang with the BPF target (Debian/Ubuntu: apt-get install clang libbpf-dev), " +
  "or set CLANG to its path";
for (const object of OBJECTS) {
  const source = path.join(PACKAGE_DIR, "bpf", object.source);
  const output = path.join(OUTPUT_DIR, object.output);
  const args = [
    "-O2",
    "-g",
    "-Wall",
    "-target",
    "bpf",
    ...(object.vmlinux ? [`-I${OUTPUT_DIR}`] : []),
    `-I/usr/include/${multiarch()}`,
    "-c",
    source,
    "-o",
    output,
  ];
  const result = spawnSync(clang, args, { stdio: "inherit" });
  checkResult(
    result,
    clang,
    `compiling ${path.relative(PACKAGE_DIR, source)} (command: ${clang} ${args.join(" ")})`,
    clangHint,
  );
  process.stdout.write(`build-bpf: wrote ${path.relative(PACKAGE_DIR, output)}\n`);
}
rmSync(VMLINUX_H, { force: true });
