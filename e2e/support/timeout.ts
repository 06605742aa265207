import { jest } from '@jest/globals';

// Cluster tests wait on real controllers (rollouts, garbage collection, the HPA loop).
jest.setTimeout(240_000);
