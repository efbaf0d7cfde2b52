import { InvalidArgumentError } from "commander";

/** Commander argument parsers: a bad value is a usage error naming the option, before any work. */
export function positiveInt(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError("expected an integer ≥ 0");
  return n;
}

export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError("expected a number ≥ 0");
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError("expected a number > 0");
  return n;
}

export function probability(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !(n > 0 && n <= 1))
    throw new InvalidArgumentError("expected a number in (0, 1]");
  return n;
}

/** For repeatable options: `--stop a --stop b` → ["a", "b"]. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
