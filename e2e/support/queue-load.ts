// A publisher with confirms on a queue tier from inside a pod (e2e/support/queue-writer.mjs).
import { getApp } from './apps.ts';
import { json } from './kube.ts';
import { runWriter, writerScript, type LoopResult, type Ranges } from './pod-writer.ts';

const WRITER = writerScript('queue-writer.mjs');

/** Publishes through QUEUE_URL from the pod for `seconds`; resolves with what the broker confirmed. */
export const publishFor = (ns: string, pod: string, queue: string, seconds: number) =>
  runWriter<LoopResult>(ns, pod, WRITER, {
    WRITER_MODE: 'write',
    WRITER_QUEUE: queue,
    WRITE_SECONDS: String(seconds),
  });

/** Publishes `count` messages at once through QUEUE_URL and waits for every confirm. */
export const publishCount = (ns: string, pod: string, queue: string, count: number) =>
  runWriter<{ confirmed: number }>(ns, pod, WRITER, {
    WRITER_MODE: 'publish',
    WRITER_QUEUE: queue,
    COUNT: String(count),
  });

/**
 * Takes every message off the queue through QUEUE_URL (or `url`, a rotated login's: the pod's
 * environment keeps the URL it started with): their ids, and how many came twice.
 */
export const drainQueue = (ns: string, pod: string, queue: string, url?: string) =>
  runWriter<{ ids: Ranges; count: number; duplicates: number }>(ns, pod, WRITER, {
    WRITER_MODE: 'drain',
    WRITER_QUEUE: queue,
    ...(url ? { QUEUE_URL: url } : {}),
  });

/** The consumer `name`'s entry in the app's status: its last decision and its last scale. */
export const consumerStatus = (ns: string, app: string, name: string) =>
  getApp(ns, app).status?.consumers?.find((c: { name: string }) => c.name === name);

/** How many replicas the operator asks of the consumer `name`'s Deployment. */
export const consumerReplicas = (ns: string, app: string, name: string) =>
  json<{ spec: { replicas: number } }>(['get', 'deployment', `${app}-${name}`, '-n', ns]).spec.replicas;
