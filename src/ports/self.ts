/** A host and port the exporter listens on. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * The exporter's own address port: the address it is configured to listen on, replaced by
 * the address it actually bound once listening (port 0, a wildcard). The peer prober uses
 * it to skip itself and as the default peer port.
 */
export class SelfAddress {
  private bound?: ListenAddress;
  constructor(private readonly configured: ListenAddress) {}

  get(): ListenAddress {
    return this.bound ?? this.configured;
  }
  /** Told by the HTTP server once it listens. */
  listening(host: string, port: number): void {
    this.bound = { host, port };
  }
}
