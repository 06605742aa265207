{{/*
One Postgres cluster's Services: headless (stable pod DNS), read-write (the primary) and
read-only (every ready instance).
*/}}
{{- define "scalableapp-lib.postgres.services" -}}
{{- $c := . }}
{{- $primary := include "scalableapp-lib.postgres.primary" . }}
{{- $headless := include "scalableapp-lib.postgres.headless" . }}
# Stable pod DNS, for pods not ready yet too: a starting replica finds its primary here.
apiVersion: v1
kind: Service
metadata:
  {{- include "scalableapp-lib.member.metadata" (merge (dict "name" $headless) $c) | nindent 2 }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "scalableapp-lib.member.selector" $c | nindent 4 }}
  {{- include "scalableapp-lib.postgres.servicePort" . | nindent 2 }}
---
# Read-write: the recorded primary. The operator selects it by a role label it moves on failover;
# without the operator nothing moves labels, so this selects the pod that the record names by the
# label the StatefulSet controller puts on every pod.
apiVersion: v1
kind: Service
metadata:
  {{- include "scalableapp-lib.member.metadata" (merge (dict "name" (printf "%s-rw" .name)) $c) | nindent 2 }}
spec:
  selector:
    {{- include "scalableapp-lib.member.selector" $c | nindent 4 }}
    statefulset.kubernetes.io/pod-name: {{ $primary | quote }}
  {{- include "scalableapp-lib.postgres.servicePort" . | nindent 2 }}
---
# Read-only: every ready instance, the primary included. The operator publishes the endpoints itself
# (the ready replicas, or the primary when none is); a selector cannot leave one pod out, and reads
# on the primary are correct, only not offloaded.
apiVersion: v1
kind: Service
metadata:
  {{- include "scalableapp-lib.member.metadata" (merge (dict "name" (printf "%s-ro" .name)) $c) | nindent 2 }}
spec:
  selector:
    {{- include "scalableapp-lib.member.selector" $c | nindent 4 }}
  {{- include "scalableapp-lib.postgres.servicePort" . | nindent 2 }}
{{- end }}
