{{/*
Names and labels, as operator/tiers/labels.ts builds them. The release name plays the part of the
ScalableApp's name and the release namespace its namespace. Every template here takes a dict:
  context    the chart's root context ($)
  component  the tier's component label (web, cache, ...)
  name       the object's name (only "scalableapp-lib.metadata")
  suffix     the name after "<release>-" (only "scalableapp-lib.childName")
*/}}

{{/* `<release>-<suffix>`, as childName(): two apps in one namespace never collide. */}}
{{- define "scalableapp-lib.childName" -}}
{{- printf "%s-%s" .context.Release.Name .suffix -}}
{{- end }}

{{/* The labels that select one tier's pods; selectors are immutable, so these never change. */}}
{{- define "scalableapp-lib.selectorLabels" -}}
app.kubernetes.io/instance: {{ .context.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end }}

{{/*
The recommended app.kubernetes.io labels of a pod template: the operator's tierLabels() with
managed-by set to Helm. No helm.sh/chart here: a chart upgrade alone must not roll the pods.
*/}}
{{- define "scalableapp-lib.podLabels" -}}
app.kubernetes.io/name: {{ .component | quote }}
{{ include "scalableapp-lib.selectorLabels" . }}
app.kubernetes.io/part-of: {{ .context.Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service | quote }}
{{- end }}

{{/* The labels of every object the chart renders: the pod labels plus helm.sh/chart. */}}
{{- define "scalableapp-lib.labels" -}}
{{ include "scalableapp-lib.podLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .context.Chart.Name .context.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
{{- end }}

{{/* name, namespace and labels of one object of a tier. */}}
{{- define "scalableapp-lib.metadata" -}}
name: {{ .name | quote }}
namespace: {{ .context.Release.Namespace | quote }}
labels:
  {{- include "scalableapp-lib.labels" . | nindent 2 }}
{{- end }}
