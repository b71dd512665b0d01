/**
 * `$(VAR)` expansion exactly as Kubernetes does it for env values, command and
 * args (third_party/forked/golang/expansion):
 *
 * - `$(NAME)` is replaced by NAME's value when NAME is defined, else left as is;
 * - `$$` is an escaped `$` (so `$$(NAME)` yields the literal `$(NAME)`);
 * - `$` followed by anything else, an unterminated `$(`, or a trailing `$` stays literal.
 *
 * One difference: Go walks bytes and mangles a non-ASCII character right after a
 * lone `$`; this walks UTF-16 code units and keeps such characters intact.
 *
 * @module
 */

/** Looks a variable up; returns `undefined` when it is not defined. */
export type VariableLookup = (name: string) => string | undefined;

/** Builds a lookup over maps consulted in order (first hit wins), like Go's `MappingFuncFor`. */
export function lookupIn(...contexts: ReadonlyArray<ReadonlyMap<string, string>>): VariableLookup {
  return (name) => {
    for (const m of contexts) {
      const v = m.get(name);
      if (v !== undefined) return v;
    }
    return undefined;
  };
}

/** Expands `$(VAR)` references in `input` (see the module notes). */
export function expandVariables(input: string, lookup: VariableLookup): string {
  if (!input.includes("$")) return input;
  let out = "";
  let checkpoint = 0;
  for (let i = 0; i < input.length; i++) {
    if (input[i] !== "$" || i + 1 >= input.length) continue;
    out += input.slice(checkpoint, i);
    const next = input[i + 1];
    if (next === "$") {
      out += "$";
      i += 1;
    } else if (next === "(") {
      const close = input.indexOf(")", i + 2);
      if (close === -1) {
        out += "$(";
        i += 1;
      } else {
        const name = input.slice(i + 2, close);
        out += lookup(name) ?? `$(${name})`;
        i = close;
      }
    } else {
      out += `$${next}`;
      i += 1;
    }
    checkpoint = i + 1;
  }
  return out + input.slice(checkpoint);
}
