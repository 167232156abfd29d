/**
 * What a flag is and how its parsed value is read. The parsing itself (argv, environment,
 * defaults) lives in config/; collectors declare their flags with these types and read
 * them once, through `FlagValues`, into their own typed config.
 */

/** The value kinds a flag can take. */
export type FlagType = 'string' | 'bool' | 'duration' | 'int' | 'float' | 'enum' | 'list';

/** One command-line flag; every flag is also read from `DS_EXPORTER_<NAME>`. */
export interface FlagDef {
  readonly name: string;
  readonly type: FlagType;
  readonly help: string;
  /** Default as the user would type it (durations as "1s"). Absent: unset. The only place a default is written. */
  readonly default?: string | boolean;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** Hidden from --help (test seams). */
  readonly hidden?: boolean;
}

/** Parsed flag values. `list` flags are repeatable and/or comma-separated. */
export interface FlagValues {
  /** Flags given explicitly on the command line or environment. */
  readonly explicit: ReadonlySet<string>;
  has(name: string): boolean;
  string(name: string): string | undefined;
  bool(name: string): boolean;
  number(name: string): number | undefined;
  list(name: string): string[];
  /** The value of a flag declared with a default; throws when it has none (a declaration slip, not user input). */
  requireString(name: string): string;
  /** The value of a number or duration (ms) flag declared with a default; throws when it has none. */
  requireNumber(name: string): number;
}
