import { backoffMs, messageIdOf } from './queue.ts';

describe('queue helpers', () => {
  it('backs off exponentially with jitter, capped', () => {
    expect([0, 1, 2, 3].map((a) => backoffMs(a, 500, 30_000, () => 1))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffMs(3, 500, 30_000, () => 0)).toBe(2000);
    expect(backoffMs(50, 500, 30_000, () => 1)).toBe(30_000);
  });

  it('finds a message id in the AMQP properties or the JSON body', () => {
    const json = (v: unknown) => Buffer.from(JSON.stringify(v));
    expect(messageIdOf({ messageId: 'm-1' }, json({ id: 'other' }))).toBe('m-1');
    expect(messageIdOf({}, json({ id: 'b-2' }))).toBe('b-2');
    expect(messageIdOf({}, json({ id: 7 }))).toBe('7');
    expect(messageIdOf({ messageId: undefined }, Buffer.from('not json'))).toBeUndefined();
  });
});
