#!/usr/bin/env -S node --no-memory-reducer
import { buildApp } from './app.js';
import { collectorDefinitions } from './collectors/index.js';
import { allFlags, loadConfig } from './config/config.js';
import { formatHelp } from './config/flags.js';
import { ConfigError, describeError, SourceError } from './core/errors.js';
import { createLogger } from './core/logger.js';
import { runImport } from './commands/import-nccl-tests.js';
import { VERSION } from './version.js';

const HEADER = `ds-exporter ${VERSION}: Prometheus exporter for GPU hosts that serve or train large models.

Usage: ds-exporter [flags]
       ds-exporter import nccl-tests [FILE|-] [--output FILE]   (see: ds-exporter import nccl-tests --help)`;

/** The only place that exits the process. */
async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'import') {
    try {
      return await runImport(argv.slice(1));
    } catch (err) {
      if (err instanceof ConfigError || err instanceof SourceError) {
        process.stderr.write(`ds-exporter: error: ${describeError(err)}\n`);
        return err instanceof ConfigError ? 2 : 1;
      }
      throw err;
    }
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(formatHelp(allFlags(collectorDefinitions), HEADER));
    return 0;
  }
  if (argv.includes('--version')) {
    process.stdout.write(`ds-exporter ${VERSION} (node ${process.version})\n`);
    return 0;
  }
  let config, logger, built;
  try {
    config = loadConfig(argv, process.env);
    if (config.flags.positional.length > 0) throw new ConfigError(`unexpected argument "${config.flags.positional[0]}" (see --help)`);
    logger = createLogger(config.logLevel);
    built = await buildApp(config, { logger });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ds-exporter: error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  try {
    await built.app.listen({ host: config.listenHost, port: config.listenPort });
  } catch (err) {
    logger.error('cannot listen', { address: `${config.listenHost}:${config.listenPort}`, err: describeError(err) });
    await built.close();
    return 1;
  }
  built.start();
  const addr = built.app.server.address();
  logger.info('ds-exporter listening', {
    version: VERSION,
    address: typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : String(addr),
    gpu_source: built.deps.gpus.sourceKind ?? 'none',
    collectors: built.scheduler.collectorNames.join(','),
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info('shutting down', { signal });
      const force = setTimeout(() => resolve(1), 10_000);
      force.unref();
      built.close().then(
        () => resolve(0),
        (err) => {
          logger.error('shutdown failed', { err: describeError(err) });
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`ds-exporter: fatal: ${describeError(err)}\n`);
    process.exit(1);
  },
);
