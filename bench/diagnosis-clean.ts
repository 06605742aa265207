// Benchmark (a script, never a test): clean() on runtime messages an attacker-controlled image or
// registry could make adversarial, against an ordinary message of the same length, side by side in one
// run. Every expression in clean() is meant to be linear, so each ratio should stay near 1; a
// backtracking expression shows up here as a ratio in the hundreds.
// Run: npm run bench:diagnosis-clean
import { clean } from '../operator/controller/pod-diagnosis.ts';
import { median } from './stats.ts';

const RUNS = Number(process.env.RUNS ?? 21);
const LENGTH = 60_000;
const ms = (text: string) => {
  const started = process.hrtime.bigint();
  clean(text);
  return Number(process.hrtime.bigint() - started) / 1e6;
};

const ordinary = 'Back-off pulling image "registry.example/shop:1" '.repeat(LENGTH / 48).slice(0, LENGTH);
const adversarial: Record<string, string> = {
  'one long word': 'y'.repeat(LENGTH),
  'scheme-like runs': 'a:'.repeat(LENGTH / 2),
  'short words': 'ab '.repeat(LENGTH / 3),
  'empty URLs': 'x://'.repeat(LENGTH / 4),
  'userinfo without @': `https://${'u'.repeat(LENGTH - 8)}`,
};

console.log(`clean() on ${LENGTH}-character messages, median of ${RUNS} runs each, interleaved`);
const times = new Map<string, number[]>(['ordinary', ...Object.keys(adversarial)].map((k) => [k, []]));
for (let i = 0; i < RUNS; i++) {
  times.get('ordinary')!.push(ms(ordinary));
  for (const [name, text] of Object.entries(adversarial)) times.get(name)!.push(ms(text));
}
const base = median(times.get('ordinary')!);
console.log(`  ordinary                ${base.toFixed(3)} ms`);
for (const name of Object.keys(adversarial)) {
  const m = median(times.get(name)!);
  console.log(`  ${name.padEnd(22)}  ${m.toFixed(3)} ms   ratio ${(m / base).toFixed(2)}`);
}
