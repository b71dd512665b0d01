/**
 * A tiny model of what `nft -f -` does with the renderer's payloads: enough to apply a
 * sequence of full and partial transactions and compare the result with a fresh full
 * render, and to catch references to chains and sets that do not exist.
 */
import { createHash } from "node:crypto";

/** The table's chains (with rules), sets and maps (element → value or ""). */
export interface NftModel {
  chains: Map<string, string[]>;
  sets: Map<string, Map<string, string>>;
}

export function emptyModel(): NftModel {
  return { chains: new Map(), sets: new Map() };
}

function items(body: string): string[] {
  const inner = body.trim();
  if (!inner.startsWith("{") || !inner.endsWith("}")) throw new Error(`bad element body ${body}`);
  return inner
    .slice(1, -1)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/**
 * Applies one payload like nft would (all or nothing: the model is only replaced when
 * every line applied); throws on what nft would reject.
 */
export function applyPayload(model: NftModel, payload: string, table = "ip kube-proxy"): NftModel {
  const m: NftModel = {
    chains: new Map([...model.chains].map(([k, v]) => [k, [...v]])),
    sets: new Map([...model.sets].map(([k, v]) => [k, new Map(v)])),
  };
  const lines = payload.split("\n").filter((l) => l !== "");
  lines.forEach((line, i) => {
    const fail = (why: string) => {
      throw new Error(`line ${i + 1}: ${why}: ${line}`);
    };
    const rest = (verb: string) => line.slice(`${verb} ${table} `.length);
    if (line.startsWith(`add table ${table}`)) return;
    if (line === `delete table ${table}`) {
      m.chains.clear();
      m.sets.clear();
      return;
    }
    if (line.startsWith(`add chain ${table} `)) {
      const name = rest("add chain").split(" ")[0]!;
      if (!m.chains.has(name)) m.chains.set(name, []);
      return;
    }
    if (line.startsWith(`flush chain ${table} `)) {
      const name = rest("flush chain");
      if (!m.chains.has(name)) fail("flush of a missing chain");
      m.chains.set(name, []);
      return;
    }
    if (line.startsWith(`delete chain ${table} `)) {
      const name = rest("delete chain");
      const rules = m.chains.get(name);
      if (rules === undefined) fail("delete of a missing chain");
      if (rules!.length > 0) fail("delete of a chain with rules");
      if (references(m).has(`chain:${name}`)) fail("delete of a referenced chain");
      m.chains.delete(name);
      return;
    }
    if (line.startsWith(`add set ${table} `) || line.startsWith(`add map ${table} `)) {
      const name = line.slice(`add set ${table} `.length).split(" ")[0]!;
      if (!m.sets.has(name)) m.sets.set(name, new Map());
      return;
    }
    if (line.startsWith(`delete set ${table} `)) {
      const name = rest("delete set");
      if (!m.sets.has(name)) fail("delete of a missing set");
      if (references(m).has(`set:${name}`)) fail("delete of a referenced set");
      m.sets.delete(name);
      return;
    }
    if (line.startsWith(`add element ${table} `) || line.startsWith(`delete element ${table} `)) {
      const add = line.startsWith("add");
      const r = rest(add ? "add element" : "delete element");
      const sp = r.indexOf(" ");
      const set = m.sets.get(r.slice(0, sp));
      if (set === undefined) fail("element of a missing set");
      for (const it of items(r.slice(sp + 1))) {
        const [key, value] = it.split(" : ") as [string, string | undefined];
        if (add) {
          const had = set!.get(key);
          if (had !== undefined && had !== (value ?? "")) fail(`element ${key} exists with another value`);
          set!.set(key, value ?? "");
        } else {
          if (!set!.has(key)) fail(`delete of a missing element ${key}`);
          set!.delete(key);
        }
      }
      return;
    }
    if (line.startsWith(`add rule ${table} `)) {
      const r = rest("add rule");
      const sp = r.indexOf(" ");
      const rules = m.chains.get(r.slice(0, sp));
      if (rules === undefined) fail("rule in a missing chain");
      rules!.push(r.slice(sp + 1));
      return;
    }
    fail("unknown statement");
  });
  for (const ref of references(m)) {
    const [kind, name] = ref.split(/:(.*)/s) as [string, string];
    if (kind === "chain" && !m.chains.has(name)) throw new Error(`reference to missing chain ${name}`);
    if (kind === "set" && !m.sets.has(name)) throw new Error(`reference to missing set ${name}`);
  }
  return m;
}

/** `chain:X` / `set:X` referred to by rules and map values. */
export function references(m: NftModel): Set<string> {
  const out = new Set<string>();
  const scan = (text: string) => {
    for (const x of text.matchAll(/\b(?:goto|jump) (\S+)/g)) out.add(`chain:${x[1]}`);
    for (const x of text.matchAll(/@(\S+)/g)) out.add(`set:${x[1]}`);
  };
  for (const rules of m.chains.values()) for (const r of rules) scan(r);
  for (const set of m.sets.values()) for (const v of set.values()) scan(v);
  return out;
}

/** A canonical text of the model (sorted), for comparisons. */
export function dumpModel(m: NftModel): string {
  const out: string[] = [];
  for (const name of [...m.chains.keys()].sort())
    out.push(`chain ${name}`, ...m.chains.get(name)!.map((r) => `  ${r}`));
  for (const name of [...m.sets.keys()].sort()) {
    out.push(`set ${name}`);
    for (const [k, v] of [...m.sets.get(name)!].sort()) out.push(`  ${k}${v !== "" ? ` : ${v}` : ""}`);
  }
  return out.join("\n");
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32 (with padding), written independently of the source under test. */
export function base32(bytes: Uint8Array): string {
  let bits = "";
  for (const b of bytes) bits += b.toString(2).padStart(8, "0");
  while (bits.length % 5 !== 0) bits += "0";
  let out = "";
  for (let i = 0; i < bits.length; i += 5) out += BASE32[Number.parseInt(bits.slice(i, i + 5), 2)];
  while (out.length % 8 !== 0) out += "=";
  return out;
}

/** kube-proxy's `hashAndTruncate`, independently: base32(sha256(name))[:8] + "-" + name, at most 240 chars. */
export function expectedHashAndTruncate(name: string): string {
  const out = `${base32(createHash("sha256").update(name).digest()).slice(0, 8)}-${name}`;
  return out.length > 240 ? `${out.slice(0, 237)}...` : out;
}
