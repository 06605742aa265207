{{/*
The PodDisruptionBudget of one tier, as operator/tiers/disruption-budget.ts: maxUnavailable 1, so a
node drain always makes progress and never takes more than one pod of a tier at a time; a pod
that is not Ready may always be evicted (unhealthyPodEvictionPolicy AlwaysAllow).
Takes context, component, name.
*/}}
{{- define "scalableapp-lib.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  {{- include "scalableapp-lib.metadata" . | nindent 2 }}
spec:
  maxUnavailable: 1
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "scalableapp-lib.selectorLabels" . | nindent 6 }}
{{- end }}
