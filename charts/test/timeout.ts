import { jest } from '@jest/globals';

// Chart tests run helm and issue test certificates (RSA keys): a few hundred milliseconds alone, but
// in `npm test` they run at the lowest priority beside the real node's lane, and under that load
// (load average 40-80 on two cores) several took over jest's default 5 s and failed. A deadline for a
// hang, not a claim about speed.
jest.setTimeout(60_000);
