// The live configuration: one document (the configuration file's shape) in the parley-config
// bucket, validated as strictly as the file, changed by compare-and-set, and watched by every
// worker and gateway so that a change reaches them without a restart. The file a worker starts
// with only seeds the bucket when it is empty; from then on the bucket is the configuration.
import { type KV, type KvEntry, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Settings } from '../../actors/settings.ts';
import { type ConfigFile, configDocument, validateConfig } from '../config.ts';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { isRevisionConflict } from './leases.ts';
import { BUCKETS } from './streams.ts';

/** The key of the configuration document in the parley-config bucket. */
export const CONFIG_KEY = 'settings';

export interface ConfigVersion {
  readonly document: ConfigFile;
  readonly settings: Settings;
  /** The bucket revision: what a compare-and-set change is made against. */
  readonly revision: number;
}

const SOURCE = `the live configuration (${BUCKETS.config})`;
const decoder = new TextDecoder();

export class LiveConfig {
  readonly #kv: KV;
  readonly #log: Logger | undefined;
  #current: ConfigVersion;
  #stop: (() => void) | undefined;
  readonly #listeners = new Set<(version: ConfigVersion) => void>();

  private constructor(kv: KV, current: ConfigVersion, log?: Logger) {
    this.#kv = kv;
    this.#current = current;
    this.#log = log;
  }

  /**
   * Opens the live configuration; when the bucket holds none yet, `seed` becomes it (the first
   * process to write wins). The bucket must exist (ensureStreams creates it).
   */
  static async open(
    nc: NatsConnection,
    seed: Settings | undefined,
    log?: Logger,
  ): Promise<LiveConfig> {
    const kv = await new Kvm(nc).open(BUCKETS.config);
    let entry = await kv.get(CONFIG_KEY);
    if (entry?.operation !== 'PUT' && seed) {
      const document = configDocument(seed);
      validateConfig(document, 'the starting configuration');
      try {
        await kv.create(CONFIG_KEY, JSON.stringify(document));
        log?.info('live configuration seeded from the starting configuration');
      } catch (error) {
        if (!isRevisionConflict(error)) throw error; // else: another process seeded it first
      }
      entry = await kv.get(CONFIG_KEY);
    }
    if (entry?.operation !== 'PUT') {
      throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`${SOURCE}: no configuration stored yet`]);
    }
    return new LiveConfig(kv, read(entry), log);
  }

  get current(): ConfigVersion {
    return this.#current;
  }

  /** Calls `listener` with each new version written by anyone, until `close()`. */
  onChange(listener: (version: ConfigVersion) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts watching the bucket for changes. */
  async watch(): Promise<void> {
    if (this.#stop) return;
    const watcher = await this.#kv.watch({ key: CONFIG_KEY });
    this.#stop = () => watcher.stop();
    void (async () => {
      for await (const entry of watcher) {
        if (entry.operation !== 'PUT' || entry.revision <= this.#current.revision) continue;
        try {
          this.#accept(read(entry));
        } catch (error) {
          // Every writer validates first: an invalid document is someone editing the bucket by hand.
          this.#log?.error({ err: error, revision: entry.revision }, 'live configuration refused');
        }
      }
    })();
  }

  #accept(version: ConfigVersion): void {
    if (version.revision <= this.#current.revision) return;
    this.#current = version;
    this.#log?.info({ revision: version.revision }, 'live configuration changed');
    for (const listener of this.#listeners) listener(version);
  }

  /**
   * Changes the configuration: `change` gets the current document and returns the next one,
   * which is validated (PARLEY_ERR_CONFIG_INVALID lists every problem) and written by
   * compare-and-set; on a concurrent change, `change` is applied again to the newer document.
   * With `expectedRevision`, a document changed since then is refused instead (412-style).
   */
  async update(
    change: (document: ConfigFile) => ConfigFile,
    expectedRevision?: number,
  ): Promise<ConfigVersion> {
    for (let attempt = 1; ; attempt++) {
      const base = await this.#latest();
      if (expectedRevision !== undefined && base.revision !== expectedRevision) {
        throw new ParleyError('PARLEY_ERR_CONFIG_CHANGED', [String(base.revision)]);
      }
      const document = change(structuredClone(base.document));
      const settings = validateConfig(document, SOURCE);
      try {
        const revision = await this.#kv.update(CONFIG_KEY, JSON.stringify(document), base.revision);
        const version = { document, settings, revision };
        this.#accept(version);
        return version;
      } catch (error) {
        if (!isRevisionConflict(error) || attempt >= 10 || expectedRevision !== undefined) {
          if (isRevisionConflict(error)) {
            throw new ParleyError('PARLEY_ERR_CONFIG_CHANGED', ['(changed meanwhile)']);
          }
          throw error;
        }
      }
    }
  }

  async #latest(): Promise<ConfigVersion> {
    const entry = await this.#kv.get(CONFIG_KEY);
    if (entry?.operation !== 'PUT') return this.#current;
    const version = read(entry);
    this.#accept(version);
    return version;
  }

  close(): void {
    this.#stop?.();
    this.#stop = undefined;
    this.#listeners.clear();
  }
}

function read(entry: KvEntry): ConfigVersion {
  let document: ConfigFile;
  try {
    document = JSON.parse(decoder.decode(entry.value)) as ConfigFile;
  } catch (error) {
    throw new ParleyError('PARLEY_ERR_CONFIG_SYNTAX', [SOURCE, (error as Error).message]);
  }
  return { document, settings: validateConfig(document, SOURCE), revision: entry.revision };
}
