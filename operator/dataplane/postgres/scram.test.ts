import { scramVerifier, verifierSafe } from './scram.ts';

describe('scramVerifier', () => {
  it("computes Postgres' SCRAM-SHA-256 verifier (a vector computed with Python's hashlib)", () => {
    const salt = Buffer.from(Array.from({ length: 16 }, (_, i) => i));
    expect(scramVerifier('p@ss word:"1"', salt)).toBe(
      'SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$+DAaRhwW58va98jrgefuKeYWEai27wTbML1dsfA7KOw=:1wnOmW3GDw6jIrNtUFGe3jg+/CX7ytDkIYzD3Zr8t2c=',
    );
  });

  it('salts each verifier anew', () => {
    expect(scramVerifier('same')).not.toBe(scramVerifier('same'));
  });

  it('refuses what SASLprep could change, and an empty password, without echoing it', () => {
    for (const pw of ['caf\u00e9', 'tab\there', '']) {
      expect(verifierSafe(pw)).toBe(false);
      expect(() => scramVerifier(pw)).toThrow(/must be printable ASCII/);
    }
    expect(() => scramVerifier('secr\u00e9t')).toThrow(/^(?![\s\S]*secr)/);
  });
});
