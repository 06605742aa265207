// The two Services in front of the app, which route to each other: the web tier's Ingress or route
// sends the static asset paths to the edge cache, and the edge cache fetches what it misses from the
// web Service. Their names and ports live here, so that neither tier's module imports the other.
import type { ScalableApp } from '../api/scalable-app.ts';
import { childName } from './labels.ts';

export const WEB = 'web';
/** The web Service's port; the container port is the app's own (`spec.web.port`). */
export const WEB_SERVICE_PORT = 80;
export const webName = (app: ScalableApp) => childName(app, WEB);

/** The edge cache Service's port. */
export const EDGE_SERVICE_PORT = 80;
export const edgeName = (app: ScalableApp) => childName(app, 'edge');
