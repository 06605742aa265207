{{/*
The restricted Pod Security Standard, as operator/tiers/pod-security.ts: a fixed non-root uid, no
API token (no tier talks to the apiserver), no service-link variables, a read-only root filesystem
with /tmp as the one writable place.
*/}}

{{/* Pod-level fields; include at the indentation of the pod spec's keys. */}}
{{- define "scalableapp-lib.podSecurity" -}}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* A container's securityContext; include at the indentation of the container's keys. */}}
{{- define "scalableapp-lib.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  privileged: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities:
    drop:
      - ALL
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* The /tmp volume (a list item for `volumes:`) and its mount (for `volumeMounts:`, last). */}}
{{- define "scalableapp-lib.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end }}

{{- define "scalableapp-lib.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}
