/** Prunes APP/node_modules of files the exporter never loads; returns the removed paths relative to APP. */
export function prune(app: string): string[];
