// Scraping metrics endpoints on the real node the way a Prometheus in a pod would: from inside a pod
// that the NetworkPolicies admit as a scraper, to the address and port a pod's prometheus.io/*
// annotations name.
import { json } from './kube.ts';
import { execIn } from './real-node.ts';

export interface ScrapedPod {
  readonly name: string;
  readonly component: string;
  readonly host: string;
  readonly port: number;
  readonly path: string;
}

/** The pods of `ns` annotated for scraping: name, tier, address and the port and path they name. */
export const scrapedPods = (ns: string): ScrapedPod[] =>
  json<any>(['get', 'pods', '-n', ns])
    .items.filter((p: any) => p.metadata.annotations?.['prometheus.io/scrape'] === 'true')
    .map((p: any) => ({
      name: p.metadata.name as string,
      component: p.metadata.labels['app.kubernetes.io/component'] as string,
      host: p.status.podIP as string,
      port: Number(p.metadata.annotations['prometheus.io/port']),
      path: p.metadata.annotations['prometheus.io/path'] as string,
    }));

/** GET from inside a pod of the demo image (it has node), bounded to 10 s: the body, or `error <code>`. */
export function scrapeFrom(namespace: string, pod: string, url: string): string {
  const script =
    `fetch(${JSON.stringify(url)},{signal:AbortSignal.timeout(10000)})` +
    `.then(r=>r.text()).then(t=>process.stdout.write(t))` +
    `.catch(e=>{console.log('error '+(e.cause?.code??e.name));process.exit(1)})`;
  return execIn(namespace, pod, ['node', '-e', script]).stdout;
}

/** One sample's value: `name{labels}` as a prefix of a line (labels in the exporter's order). */
export const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `) || l.startsWith(`${series}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};
