/**
 * Parsing and checking of option values shared by the commands: every bad value is refused with a
 * message that names the option and what it accepts.
 */
import { InvalidArgumentError } from 'commander';

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
