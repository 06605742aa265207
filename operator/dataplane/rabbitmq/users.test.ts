import { rabbitPasswordHash } from './users.ts';

describe('rabbitPasswordHash', () => {
  it("is RabbitMQ's rabbit_password_hashing_sha256: a 4-byte salt, then SHA-256 of salt and UTF-8 password, in base64", () => {
    // The vector from Python's hashlib: base64(salt + sha256(salt + 'pässword'.encode()).digest()).
    expect(rabbitPasswordHash('pässword', Buffer.from([1, 2, 3, 4]))).toBe(
      'AQIDBE9skmuBchcwuhKDvVscFGTND++y2wcv/NL1rVA61/5C',
    );
    // A new salt each time: two hashes of one password differ (server-tests/queue.test.ts logs in with one).
    expect(rabbitPasswordHash('x')).not.toBe(rabbitPasswordHash('x'));
    expect(() => rabbitPasswordHash('x', Buffer.alloc(3))).toThrow('4 bytes');
  });
});
