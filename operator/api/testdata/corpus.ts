// The two corpora every schema test shares: the samples in manifests/samples (valid) and
// testdata/invalid.yaml (each with the field its rejection must name).
import { readdirSync, readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';

const root = new URL('../../../', import.meta.url);

export interface ValidCase {
  readonly file: string;
  readonly object: {
    apiVersion: string;
    kind: string;
    metadata: { name: string };
    spec: Record<string, unknown>;
  };
}

export interface InvalidCase {
  readonly name: string;
  /**
   * Path the error must name, e.g. spec.web.autoscaling.minReplicas. A duplicate in a keyed list
   * names the list: server-side apply reports the list, a plain create names the item (`[i]`).
   */
  readonly field: string;
  readonly spec: Record<string, unknown>;
  /** When set, `spec` is created first and this update must be rejected. */
  readonly update?: Record<string, unknown>;
  /** The ScalableApp's name, when the case is about the name (`field: metadata.name`). */
  readonly appName?: string;
}

export function validCorpus(): ValidCase[] {
  const dir = new URL('manifests/samples/', root);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(new URL(file, dir), 'utf8')).map((d) => ({ file, object: d.toJS() })),
    );
}

export function invalidCorpus(): InvalidCase[] {
  return parse(readFileSync(new URL('operator/api/testdata/invalid.yaml', root), 'utf8')) as InvalidCase[];
}

/** Does an error message (or error path) name `field`, either exactly or as an item of it? */
export function namesField(text: string, field: string): boolean {
  const escaped = field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[\\s.])${escaped}(\\[\\d+\\])?(:|$)`, 'm').test(text);
}
