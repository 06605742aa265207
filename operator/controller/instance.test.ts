import { INSTANCE_LABEL, appSelector, defaultLeaseName, parseInstance } from './instance.ts';

describe('operator instances', () => {
  it('label the app with scalableapp.io/instance', () => {
    expect(INSTANCE_LABEL).toBe('scalableapp.io/instance');
  });

  it('select the apps without the label when the operator has no instance', () => {
    expect(appSelector(undefined)).toBe('!scalableapp.io/instance');
  });

  it('select the apps labelled with exactly the instance when it has one', () => {
    expect(appSelector('e2e')).toBe('scalableapp.io/instance=e2e');
    expect(appSelector('Team_A.blue-2')).toBe('scalableapp.io/instance=Team_A.blue-2');
  });

  it('take an empty or missing flag as no instance', () => {
    expect(parseInstance(undefined)).toBeUndefined();
    expect(parseInstance('')).toBeUndefined();
  });

  it.each(['e2e', 'a', 'Team_A.blue-2', 'x'.repeat(63)])('accept the label value %s', (v) => {
    expect(parseInstance(v)).toBe(v);
  });

  it.each(['-e2e', 'e2e-', '_x', 'x.', 'a b', 'a/b', 'a=b', 'é', 'x'.repeat(64)])(
    'refuse %j, naming the flag',
    (v) => {
      expect(() => parseInstance(v, '--instance')).toThrow(
        new RegExp(`^--instance must be a label value .*got ${JSON.stringify(v)}$`),
      );
    },
  );

  it('lead with a Lease of their own, or ask for one when the instance cannot name it', () => {
    expect(defaultLeaseName(undefined)).toBe('scalableapp-operator');
    expect(defaultLeaseName('e2e')).toBe('scalableapp-operator-e2e');
    expect(defaultLeaseName('blue.eu-1')).toBe('scalableapp-operator-blue.eu-1');
    expect(defaultLeaseName('Team_A')).toBeUndefined();
  });
});
