import { cond, mergeConditions, type Condition } from './conditions.ts';

const EARLIER = '2025-01-01T00:00:00Z';
const NOW = '2025-06-01T12:00:00Z';

const previous: Condition[] = [
  {
    type: 'WebReady',
    status: 'True',
    reason: 'Available',
    message: '2/2',
    lastTransitionTime: EARLIER,
    observedGeneration: 1,
  },
  {
    type: 'Ready',
    status: 'False',
    reason: 'Progressing',
    message: 'x',
    lastTransitionTime: EARLIER,
    observedGeneration: 1,
  },
];

describe('mergeConditions', () => {
  it('keeps lastTransitionTime when the status is unchanged, even if reason and message change', () => {
    const [web] = mergeConditions(previous, [cond('WebReady', true, 'Available', '3/3')], 2, NOW);
    expect(web).toEqual({
      type: 'WebReady',
      status: 'True',
      reason: 'Available',
      message: '3/3',
      lastTransitionTime: EARLIER,
      observedGeneration: 2,
    });
  });

  it('sets lastTransitionTime to now when the status changes', () => {
    const [ready] = mergeConditions(previous, [cond('Ready', true, 'Ready', 'all tiers ready')], 2, NOW);
    expect(ready?.status).toBe('True');
    expect(ready?.lastTransitionTime).toBe(NOW);
  });

  it('sets lastTransitionTime to now for a condition that is new', () => {
    const [db] = mergeConditions(previous, [cond('DatabaseReady', false, 'NotImplemented', 'x')], 2, NOW);
    expect(db?.lastTransitionTime).toBe(NOW);
    const [first] = mergeConditions(undefined, [cond('Ready', false, 'Pending', 'x')], 1, NOW);
    expect(first?.lastTransitionTime).toBe(NOW);
  });

  it('stamps every condition with the observed generation', () => {
    const merged = mergeConditions(
      previous,
      [cond('WebReady', true, 'Available', '2/2'), cond('Ready', false, 'Progressing', 'x')],
      7,
      NOW,
    );
    expect(merged.map((c) => c.observedGeneration)).toEqual([7, 7]);
  });

  it('an unchanged world gives an identical list (so the status write can be skipped)', () => {
    const again = mergeConditions(
      previous,
      previous.map(({ type, status, reason, message }) => ({ type, status, reason, message })),
      1,
      NOW,
    );
    expect(again).toEqual(previous);
  });
});

describe('cond', () => {
  it('maps ok to the status strings "True" and "False"', () => {
    expect(cond('A', true, 'R', 'm').status).toBe('True');
    expect(cond('A', false, 'R', 'm').status).toBe('False');
  });
});
