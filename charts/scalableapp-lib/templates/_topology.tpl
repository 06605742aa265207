{{/*
Zone spread, as operator/tiers/topology.ts: max skew 1 over zones (the platform's rule) and, softly,
over nodes (left out when the zone key is kubernetes.io/hostname: the apiserver refuses two
constraints on one key and policy). Renders `topologySpreadConstraints:` or nothing. Takes the labels dict (context,
component) plus `rollingDeployment` (true for a Deployment: `matchLabelKeys` keeps a rolling update
from counting the old ReplicaSet's pods against the new one's spread). Reads .Values.platform.topology.
*/}}
{{- define "scalableapp-lib.zoneSpread" -}}
{{- $t := dig "topology" dict (.context.Values.platform | default dict) -}}
{{- if dig "spreadAcrossZones" true $t }}
{{- $zoneKey := dig "zoneKey" "topology.kubernetes.io/zone" $t }}
{{- $keys := list $zoneKey }}
{{- if ne $zoneKey "kubernetes.io/hostname" }}{{ $keys = append $keys "kubernetes.io/hostname" }}{{ end }}
{{- $rules := list (dig "whenUnsatisfiable" "DoNotSchedule" $t) "ScheduleAnyway" -}}
topologySpreadConstraints:
{{- range $i, $key := $keys }}
  - maxSkew: 1
    topologyKey: {{ $key | quote }}
    whenUnsatisfiable: {{ index $rules $i }}
    labelSelector:
      matchLabels:
        {{- include "scalableapp-lib.selectorLabels" $ | nindent 8 }}
    {{- if $.rollingDeployment }}
    matchLabelKeys:
      - pod-template-hash
    {{- end }}
{{- end }}
{{- end }}
{{- end }}
