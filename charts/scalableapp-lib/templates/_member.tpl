{{/*
One member of a tier of several — one shard's Postgres cluster, one consumer's Deployment — as the
operator's builders take `own: { labels, selector }`: the tier's labels and selector plus labels
that tell this member's pods from its siblings' (scalableapp.io/shard, scalableapp.io/consumer).
Every template takes the labels dict (context, component) plus `extraLabels` (a dict, may be empty,
then each renders exactly what its plain lib counterpart renders) and, where named, `name`.
*/}}

{{- define "scalableapp-lib.member.extra" -}}
{{- range $k, $v := .extraLabels }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}

{{/* selectorLabels plus the member's own: what selects this member's pods only. */}}
{{- define "scalableapp-lib.member.selector" -}}
{{ include "scalableapp-lib.selectorLabels" . }}
{{- include "scalableapp-lib.member.extra" . }}
{{- end }}

{{- define "scalableapp-lib.member.podLabels" -}}
{{ include "scalableapp-lib.podLabels" . }}
{{- include "scalableapp-lib.member.extra" . }}
{{- end }}

{{- define "scalableapp-lib.member.labels" -}}
{{ include "scalableapp-lib.labels" . }}
{{- include "scalableapp-lib.member.extra" . }}
{{- end }}

{{- define "scalableapp-lib.member.metadata" -}}
name: {{ .name | quote }}
namespace: {{ .context.Release.Namespace | quote }}
labels:
  {{- include "scalableapp-lib.member.labels" . | nindent 2 }}
{{- end }}

{{/*
scalableapp-lib.zoneSpread with the member's selector: its rules stay in one place, only the
label selector of each constraint gains the member's labels. Takes rollingDeployment as well.
*/}}
{{- define "scalableapp-lib.member.zoneSpread" -}}
{{- $extra := .extraLabels | default dict -}}
{{- with (include "scalableapp-lib.zoneSpread" . | fromYaml).topologySpreadConstraints -}}
{{- range . }}{{ $_ := set .labelSelector "matchLabels" (merge (deepCopy $extra) .labelSelector.matchLabels) }}{{ end -}}
topologySpreadConstraints:
{{- toYaml . | nindent 2 }}
{{- end -}}
{{- end }}

{{/* scalableapp-lib.pdb for one member: its labels, and a selector of its pods only. */}}
{{- define "scalableapp-lib.member.pdb" -}}
{{- $pdb := include "scalableapp-lib.pdb" . | fromYaml -}}
{{- $_ := set $pdb.metadata "labels" (include "scalableapp-lib.member.labels" . | fromYaml) -}}
{{- $_ := set $pdb.spec.selector "matchLabels" (include "scalableapp-lib.member.selector" . | fromYaml) -}}
{{- toYaml $pdb -}}
{{- end }}
