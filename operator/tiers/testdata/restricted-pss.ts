import type { V1PodSpec } from '@kubernetes/client-node';

/**
 * The `restricted` Pod Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
 * as the admission controller checks it. Returns every violation; an empty list means the pod is admitted.
 */
export function restrictedViolations(pod: V1PodSpec): string[] {
  const v: string[] = [];
  if (pod.hostNetwork) v.push('hostNetwork');
  if (pod.hostPID) v.push('hostPID');
  if (pod.hostIPC) v.push('hostIPC');
  const allowedVolumeTypes = new Set([
    'configMap',
    'csi',
    'downwardAPI',
    'emptyDir',
    'ephemeral',
    'persistentVolumeClaim',
    'projected',
    'secret',
  ]);
  for (const vol of pod.volumes ?? []) {
    if (vol.hostPath) v.push(`volume ${vol.name}: hostPath`);
    for (const key of Object.keys(vol)) {
      if (key !== 'name' && key !== 'hostPath' && !allowedVolumeTypes.has(key))
        v.push(`volume ${vol.name}: type ${key}`);
    }
  }
  const podSc = pod.securityContext ?? {};
  const okSeccomp = (t: string | undefined) => t === 'RuntimeDefault' || t === 'Localhost';
  if (podSc.runAsUser === 0) v.push('pod runAsUser 0');
  if (podSc.seccompProfile && !okSeccomp(podSc.seccompProfile.type)) v.push('pod seccompProfile');
  const containers = [...(pod.initContainers ?? []), ...pod.containers];
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    const at = `container ${c.name}`;
    if (sc.privileged) v.push(`${at}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) v.push(`${at}: allowPrivilegeEscalation not false`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) v.push(`${at}: capabilities do not drop ALL`);
    for (const cap of sc.capabilities?.add ?? [])
      if (cap !== 'NET_BIND_SERVICE') v.push(`${at}: adds capability ${cap}`);
    // runAsNonRoot: true at pod level or on the container, and never false on the container.
    if (sc.runAsNonRoot === false || (podSc.runAsNonRoot !== true && sc.runAsNonRoot !== true))
      v.push(`${at}: runAsNonRoot not true`);
    if (sc.runAsUser === 0) v.push(`${at}: runAsUser 0`);
    // seccomp: RuntimeDefault or Localhost on the container, or inherited from the pod.
    const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
    if (!okSeccomp(seccomp)) v.push(`${at}: seccompProfile ${seccomp ?? 'unset'}`);
    for (const p of c.ports ?? []) if (p.hostPort) v.push(`${at}: hostPort ${p.hostPort}`);
  }
  return v;
}
