import { Router, TierError } from './http.ts';

describe('Router', () => {
  const ok = async () => ({ status: 200 });
  const r = new Router()
    .on('GET', '/db/items/:id', ok)
    .on('POST', '/db/items', ok)
    .on('GET', '/shard/:key', ok);

  it('matches parameters, percent-decoded', () => {
    expect(r.match('GET', '/shard/user%2042')).toMatchObject({ params: { key: 'user 42' } });
    expect(r.match('HEAD', '/db/items/7')).toMatchObject({ params: { id: '7' } });
  });

  it('tells a wrong method (405) from an unknown path', () => {
    expect(r.match('DELETE', '/db/items')).toEqual({ allowed: ['POST'] });
    expect(r.match('GET', '/db/items/7/x')).toBeUndefined();
    expect(() => r.match('GET', '/shard/%E0%A4%A')).toThrow(TierError);
  });
});
