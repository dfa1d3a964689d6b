import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands.ts';

const fail = (e: unknown): never => {
  throw e;
};

describe("the command table (main.ts loads a command's module only when that command runs)", () => {
  it.each(COMMANDS.map(([names, load]) => [names.join(' '), names, load] as const))(
    'the module of %s registers exactly those commands',
    async (_, names, load) => {
      const program = new Command('pvblk').enablePositionalOptions();
      (await load())(program, fail);
      expect(program.commands.map((c) => c.name()).sort()).toEqual([...names].sort());
    },
  );

  it('names each command once', () => {
    const all = COMMANDS.flatMap(([names]) => names);
    expect(new Set(all).size).toBe(all.length);
    // what the shell's `help` command is: commander's own, never a module's
    expect(all).not.toContain('help');
  });
});
