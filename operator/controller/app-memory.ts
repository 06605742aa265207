// What a controller remembers about each app between reconciles: when a primary was first seen
// unready, which pod incarnations were checked, which refusal was announced last. Kept per app, so
// that forgetting an app that went away (deleted, or handed to another operator instance) drops all
// of it: an operator that runs for months over thousands of short-lived apps must not grow with them.

/** The key of an app: `namespace/name`, as the work queue holds it. */
export const appKey = (app: { metadata: { namespace?: string; name?: string } }) =>
  `${app.metadata.namespace ?? ''}/${app.metadata.name ?? ''}`;

export class AppMemory<T> {
  readonly #byApp = new Map<string, T>();
  readonly #create: () => T;

  constructor(create: () => T) {
    this.#create = create;
  }

  /** This app's memory, made empty on first use. */
  of(key: string): T {
    let memory = this.#byApp.get(key);
    if (memory === undefined) {
      memory = this.#create();
      this.#byApp.set(key, memory);
    }
    return memory;
  }

  forget(key: string): void {
    this.#byApp.delete(key);
  }

  /** Apps remembered (for tests of forgetting). */
  get size(): number {
    return this.#byApp.size;
  }
}
