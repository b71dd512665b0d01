import type { CommandOutput, CommandRunner } from "@worknode/core";

export interface Call {
  readonly command: string;
  readonly args: readonly string[];
  readonly stdin?: string;
}

/**
 * A scripted {@link CommandRunner}: records every call; `respond` decides the output
 * (default: success with empty output).
 */
export class FakeRunner implements CommandRunner {
  readonly calls: Call[] = [];
  respond: (call: Call) => Partial<CommandOutput> | undefined = () => undefined;

  async exec(command: string, args: readonly string[], stdin?: string): Promise<CommandOutput> {
    const call: Call =
      stdin !== undefined ? { command, args: [...args], stdin } : { command, args: [...args] };
    this.calls.push(call);
    const r = this.respond(call) ?? {};
    return { code: r.code ?? 0, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  /** Calls of one program. */
  of(command: string): Call[] {
    return this.calls.filter((c) => c.command === command);
  }

  reset(): void {
    this.calls.length = 0;
  }
}
