import { bench, describe } from "vitest";
import { KeyedBackoff } from "../src/util/backoff.js";

describe("KeyedBackoff", () => {
  const kb = new KeyedBackoff({ initialMs: 10_000, maxMs: 300_000 });
  let now = 0;
  bench("next() over 110 pod containers", () => {
    now += 1000;
    for (let i = 0; i < 110; i++) kb.next(`pod-${i}/c`, now);
  });
});
