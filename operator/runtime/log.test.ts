import {
  createLogger,
  newReconcileID,
  parseLogLevel,
  REDACTED,
  sanitize,
  type LoggerOptions,
} from './log.ts';

/** A logger writing into an array of parsed lines, at a fixed time. */
function capture(options: LoggerOptions = {}): {
  logger: ReturnType<typeof createLogger>;
  raw: string[];
  lines: () => Array<Record<string, unknown>>;
} {
  const raw: string[] = [];
  const logger = createLogger({
    now: () => Date.UTC(2025, 5, 1, 12, 0, 0, 123),
    ...options,
    out: { write: (s) => raw.push(s) },
  });
  return {
    logger,
    raw,
    lines: () => raw.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('createLogger', () => {
  it('writes one JSON object per line with an RFC 3339 time, the level, the message and the fields', () => {
    const { logger, raw, lines } = capture();
    logger.info('reconciled', { generation: 3 });
    expect(raw).toHaveLength(1);
    expect(raw[0]!.endsWith('\n')).toBe(true);
    expect(raw[0]!.slice(0, -1)).not.toContain('\n');
    expect(lines()[0]).toEqual({
      ts: '2025-06-01T12:00:00.123Z',
      level: 'info',
      msg: 'reconciled',
      generation: 3,
    });
  });

  it('drops lines below the minimum level (info by default)', () => {
    const { logger, lines } = capture();
    logger.debug('noise');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(lines().map((l) => l.level)).toEqual(['info', 'warn', 'error']);
    expect(logger.enabled('debug')).toBe(false);

    const quiet = capture({ level: 'error' });
    quiet.logger.warn('w');
    quiet.logger.with({ a: 1 }).warn('w');
    quiet.logger.error('e');
    expect(quiet.lines().map((l) => l.msg)).toEqual(['e']);

    const verbose = capture({ level: 'debug' });
    verbose.logger.debug('d');
    expect(verbose.lines()).toHaveLength(1);
  });

  it('with() binds fields to a child without changing the parent; call fields win', () => {
    const { logger, lines } = capture();
    const reconcile = logger
      .with({ controller: 'scalableapp' })
      .with({ namespace: 'shop', name: 'web', reconcileID: 'r1' });
    reconcile.info('start');
    reconcile.info('override', { name: 'other' });
    logger.info('parent');
    expect(lines()).toEqual([
      expect.objectContaining({
        controller: 'scalableapp',
        namespace: 'shop',
        name: 'web',
        reconcileID: 'r1',
        msg: 'start',
      }),
      expect.objectContaining({ name: 'other', msg: 'override' }),
      { ts: expect.any(String), level: 'info', msg: 'parent' },
    ]);
  });

  it('keeps ts, level and msg from being overwritten by fields', () => {
    const { logger, lines } = capture();
    logger.warn('real', { msg: 'fake', level: 'debug' });
    expect(lines()[0]).toMatchObject({
      msg: 'real',
      level: 'warn',
      'field.msg': 'fake',
      'field.level': 'debug',
    });
  });

  it('serialises errors with message, stack and the whole cause chain', () => {
    const { logger, lines } = capture();
    const root = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const err = new Error('reading Lease ns/l', { cause: new Error('fetch failed', { cause: root }) });
    logger.error('renew failed', { err });
    const logged = lines()[0]!.err as Record<string, unknown>;
    expect(logged).toMatchObject({
      name: 'Error',
      message: 'reading Lease ns/l',
      stack: expect.stringContaining('reading Lease ns/l'),
      cause: {
        message: 'fetch failed',
        cause: { message: 'connect ECONNREFUSED', code: 'ECONNREFUSED', stack: expect.any(String) },
      },
    });
  });

  it('never prints secrets: matching keys are redacted at any depth, in objects, arrays, maps and errors', () => {
    const { logger, raw, lines } = capture();
    const apiError = Object.assign(new Error('Unauthorized'), {
      code: 401,
      headers: { Authorization: 'Bearer s3cr3t-0' },
    });
    logger.info('object', {
      password: 's3cr3t-1',
      spec: {
        database: { credentials: { user: 'u', pass: 'x' }, adminPassword: 's3cr3t-2' },
        env: [{ name: 'A', apiKey: 's3cr3t-3' }],
        tls: { private_key: 's3cr3t-4', privateKey: 's3cr3t-5' },
      },
      refs: new Map([['clientSecret', 's3cr3t-6']]),
      cause: new Error('wrapped', { cause: { token: 's3cr3t-7' } }),
      apiError,
      ACCESS_TOKEN: 's3cr3t-8',
    });
    expect(raw.join('')).not.toMatch(/s3cr3t/);
    const line = lines()[0]!;
    expect(line.password).toBe(REDACTED);
    expect(line.spec).toEqual({
      database: { credentials: REDACTED, adminPassword: REDACTED },
      env: [{ name: 'A', apiKey: REDACTED }],
      tls: { private_key: REDACTED, privateKey: REDACTED },
    });
    expect((line.apiError as Record<string, unknown>).code).toBe(401); // the rest stays readable
  });

  it('redacts bound fields too', () => {
    const { logger, raw } = capture();
    logger.with({ secretRef: 's3cr3t' }).info('x');
    expect(raw.join('')).not.toContain('s3cr3t');
  });
});

describe('sanitize', () => {
  it('cuts cycles but keeps shared, non-cyclic references', () => {
    const shared = { v: 1 };
    const cyclic: Record<string, unknown> = { name: 'a', shared, again: shared };
    cyclic.self = cyclic;
    expect(sanitize(cyclic)).toEqual({ name: 'a', shared: { v: 1 }, again: { v: 1 }, self: '[circular]' });
  });

  it('turns values JSON cannot hold into strings', () => {
    expect(
      sanitize({
        big: 10n,
        inf: Infinity,
        when: new Date(0),
        buf: Buffer.from('abc'),
        fn: function named() {},
      }),
    ).toEqual({
      big: '10',
      inf: 'Infinity',
      when: '1970-01-01T00:00:00.000Z',
      buf: '[3 bytes]',
      fn: '[function named]',
    });
  });

  it('bounds depth and array length', () => {
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 50; i++) deep = { deep };
    expect(JSON.stringify(sanitize(deep))).toContain('[too deep]');
    const long = sanitize(Array.from({ length: 150 }, (_, i) => i)) as unknown[];
    expect(long).toHaveLength(101);
    expect(long[100]).toBe('[50 more]');
  });
});

describe('parseLogLevel', () => {
  it('accepts the four levels in any case, defaults when unset, and rejects anything else', () => {
    expect(parseLogLevel('DEBUG')).toBe('debug');
    expect(parseLogLevel(undefined)).toBe('info');
    expect(parseLogLevel('', 'warn')).toBe('warn');
    expect(() => parseLogLevel('verbose')).toThrow(/unknown log level/);
  });
});

describe('newReconcileID', () => {
  it('returns a fresh random UUID each call', () => {
    const a = newReconcileID();
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(newReconcileID()).not.toBe(a);
  });
});
