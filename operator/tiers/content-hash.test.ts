import { contentHash, goJson } from './content-hash.ts';

describe('goJson writes what Go (and so Helm toJson) writes', () => {
  it('sorts keys at every level and keeps array order', () => {
    expect(goJson({ b: 1, a: { d: [3, 1], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,1]},"b":1}');
  });
  it('escapes the HTML-sensitive characters and the line separators', () => {
    expect(goJson({ s: 'a<b>&c\u2028' })).toBe('{"s":"a\\u003cb\\u003e\\u0026c\\u2028"}');
  });
  it('writes newlines and quotes as JSON.stringify does', () => {
    expect(goJson('line 1\n"two"\t')).toBe('"line 1\\n\\"two\\"\\t"');
  });
});

describe('contentHash', () => {
  it('is 16 hex digits, independent of key order, and changes with any value', () => {
    const h = contentHash({ a: '1', b: '2' });
    expect(h).toMatch(/^[0-9a-f]{16}$/);
    expect(contentHash({ b: '2', a: '1' })).toBe(h);
    expect(contentHash({ a: '1', b: '3' })).not.toBe(h);
  });
  it('matches the sha256 of Helm toJson output for a known input', () => {
    // printf '{"a":"x\\u003cy"}' | sha256sum  (what `dict "a" "x<y" | toJson | sha256sum` hashes)
    expect(contentHash({ a: 'x<y' })).toBe('db6245a22a595883');
  });
});
