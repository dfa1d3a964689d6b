/**
 * Parsing and checking of option values shared by the commands: every bad value is refused with a
 * message that names the option and what it accepts.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { FROM_PARENT } from './from-parent.ts';

export function intOption(name: string, min: number, max: number) {
  return (raw: string): number => {
    if (!/^(0|[1-9][0-9]*|0x[0-9a-fA-F]+)$/.test(raw))
      throw new InvalidArgumentError(`${name} must be an integer ${min}-${max} (got "${raw}")`);
    const v = Number(raw);
    if (v < min || v > max)
      throw new InvalidArgumentError(`${name} must be between ${min} and ${max} (got ${raw})`);
    return v;
  };
}

export function choiceOption<T extends string>(name: string, choices: readonly T[]) {
  return (raw: string): T => {
    if (!(choices as readonly string[]).includes(raw)) {
      throw new InvalidArgumentError(`${name} must be one of ${choices.join(', ')} (got "${raw}")`);
    }
    return raw as T;
  };
}

export function guestNames(n: number): string[] {
  return n === 1 ? ['guest'] : Array.from({ length: n }, (_, i) => `guest${i + 1}`);
}

/** The data-path options of every process that runs blkback (Dom0's host, a driver domain). */
export function blkbackOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--data-path <how>', 'how blkback moves data: map grants, or grant copy')
        .choices(['map', 'copy'])
        .env('PVBLK_DATA_PATH')
        .default('map'),
    )
    .option('--no-persistent', 'do not offer persistent grants')
    .option(
      '--no-pi-inline',
      'do not offer feature-integrity-inline (integrity requests then always use indirect pages)',
    )
    .addOption(
      new Option(
        '--partition-start <sectors>',
        'serve guests a partition of their disk starting at this sector (PI ref tags are remapped)',
      )
        .env('PVBLK_PARTITION_START')
        .argParser(intOption('--partition-start', 0, 1 << 30))
        .default(0),
    );
}

/**
 * A URL option, checked when it is parsed: one of `protocols`, or `@parent` where the stack gives it
 * (from-parent.ts). An unparsable URL was retried as an unreachable one for 60 s, and a guest given
 * one for its hypervisor had its domain created first and left paused.
 */
export function urlOption(name: string, protocols: readonly string[]) {
  const want = `a URL (${protocols.map((p) => `${p}//`).join(' or ')})`;
  return (raw: string): string => {
    if (raw === FROM_PARENT) return raw;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new InvalidArgumentError(`${name} must be ${want} (got "${raw}")`);
    }
    if (!protocols.includes(url.protocol))
      throw new InvalidArgumentError(`${name} must be ${want} (got "${raw}")`);
    return raw;
  };
}

/** --hypervisor: the hypervisor's WebSocket URL ($PVBLK_HYPERVISOR_URL, else the default port here). */
export function hypervisorOption(cmd: Command, help = "the hypervisor's WebSocket URL"): Command {
  return cmd.addOption(
    new Option('--hypervisor <url>', help)
      .env('PVBLK_HYPERVISOR_URL')
      .argParser(urlOption('--hypervisor', ['ws:', 'wss:']))
      .default('ws://127.0.0.1:7480/'),
  );
}

/** --toolstack: Dom0's management API ($PVBLK_TOOLSTACK_URL, else the default port here). */
export function toolstackOption(cmd: Command, help: string): Command {
  return cmd.addOption(
    new Option('--toolstack <url>', help)
      .env('PVBLK_TOOLSTACK_URL')
      .argParser(urlOption('--toolstack', ['http:', 'https:']))
      .default('http://127.0.0.1:7481'),
  );
}
