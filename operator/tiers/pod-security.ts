import type {
  V1Container,
  V1PodSecurityContext,
  V1SecurityContext,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';

/** Every pod passes the `restricted` Pod Security Standard; a fixed non-root uid makes images that
 * default to root fail loudly at build time of the object rather than at kubelet admission. */
export const RESTRICTED_UID = 65532;

export function restrictedPodSecurity(): V1PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: RESTRICTED_UID,
    runAsGroup: RESTRICTED_UID,
    fsGroup: RESTRICTED_UID,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export function restrictedContainerSecurity(): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** A read-only root filesystem still needs somewhere to write temporary files. */
export const tmpVolume: V1Volume = { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } };
export const tmpMount: V1VolumeMount = { name: 'tmp', mountPath: '/tmp' };

export function withRestrictedSecurity(c: V1Container): V1Container {
  return {
    ...c,
    securityContext: restrictedContainerSecurity(),
    volumeMounts: [...(c.volumeMounts ?? []), tmpMount],
  };
}

/**
 * What every pod the operator builds starts from: the restricted security context, no API token
 * (no tier talks to the apiserver) and no service-link environment variables (the connection
 * Secret is the one source of addresses).
 */
export function restrictedPodBase() {
  return {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: restrictedPodSecurity(),
  };
}
