import { parseApp } from '../api/testdata/apps.ts';
import { HOSTNAME_KEY, zoneSpread } from './topology.ts';

const selector = { 'app.kubernetes.io/component': 'web' };
const spreadOf = (topology: Record<string, unknown>) =>
  zoneSpread(parseApp({ web: { image: 'x' }, topology }), selector)?.map(
    (c) => `${c.topologyKey}/${c.whenUnsatisfiable}`,
  );

describe('zoneSpread', () => {
  it('spreads hard over zones and softly over nodes', () => {
    expect(spreadOf({})).toEqual([
      'topology.kubernetes.io/zone/DoNotSchedule',
      `${HOSTNAME_KEY}/ScheduleAnyway`,
    ]);
  });

  it.each(['DoNotSchedule', 'ScheduleAnyway'])(
    'with kubernetes.io/hostname as the zone key (%s) leaves the node spread out: the apiserver refuses a second constraint on one key and policy',
    (whenUnsatisfiable) => {
      expect(spreadOf({ zoneKey: HOSTNAME_KEY, whenUnsatisfiable })).toEqual([
        `${HOSTNAME_KEY}/${whenUnsatisfiable}`,
      ]);
    },
  );

  it('spreads nothing when asked not to', () => {
    expect(spreadOf({ spreadAcrossZones: false })).toBeUndefined();
  });
});
