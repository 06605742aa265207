{{/* The chart's name, also the app.kubernetes.io/name of everything it installs. */}}
{{- define "scalableapp-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Names of the release's objects. A release called like the chart (the documented
`helm install scalableapp-operator ...`) gives exactly the names of manifests/operator.
*/}}
{{- define "scalableapp-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "scalableapp-operator.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "scalableapp-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Pods of this release; selectors are immutable, so only labels that never change. */}}
{{- define "scalableapp-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scalableapp-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "scalableapp-operator.labels" -}}
{{ include "scalableapp-operator.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: scalableapp
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "scalableapp-operator.chart" . }}
{{- end -}}

{{- define "scalableapp-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
What the schema cannot say (it compares no two fields): the operator would refuse these at start,
so the release fails at render time instead of as a crash-looping pod.
*/}}
{{- define "scalableapp-operator.validate" -}}
{{- $le := .Values.leaderElection -}}
{{- if hasKey (.Values.podLabels | default dict) "scalableapp.io/operator" -}}
{{- fail "podLabels: scalableapp.io/operator is the chart's own label (the data tiers admit the operator's pods by it); remove it from podLabels" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not $le.enabled) -}}
{{- fail (printf "replicas: %d replicas need leaderElection.enabled=true, or two operators would reconcile the same apps" (int .Values.replicas)) -}}
{{- end -}}
{{- if $le.enabled -}}
{{- if le (float64 $le.leaseDurationSeconds) (float64 $le.renewDeadlineSeconds) -}}
{{- fail (printf "leaderElection.leaseDurationSeconds (%v) must exceed leaderElection.renewDeadlineSeconds (%v)" $le.leaseDurationSeconds $le.renewDeadlineSeconds) -}}
{{- end -}}
{{- if le (float64 $le.renewDeadlineSeconds) (mulf 1.2 $le.retryPeriodSeconds) -}}
{{- fail (printf "leaderElection.renewDeadlineSeconds (%v) must exceed 1.2 x leaderElection.retryPeriodSeconds (%v)" $le.renewDeadlineSeconds $le.retryPeriodSeconds) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The operator's permissions: exactly the rules of manifests/operator/10-rbac.yaml's ClusterRole
(charts/test/operator.test.ts fails on any drift). Used by the ClusterRole, or by the Role in
watchNamespace.
*/}}
{{- define "scalableapp-operator.rules" -}}
# The resource itself: cached by an informer, status written with server-side apply; patch only
# removes a switchover request once it is done (docs/adr/0020), never the spec.
- apiGroups: [scalableapp.io]
  resources: [scalableapps]
  verbs: [list, watch, patch]
- apiGroups: [scalableapp.io]
  resources: [scalableapps/status]
  verbs: [patch]
# Secrets: the connection Secret is applied; Secrets the spec references are read by name. Never
# deleted by the operator (generated credentials are data).
- apiGroups: ['']
  resources: [secrets]
  verbs: [get, list, watch, create, patch, update]
# Children: cached by informers (label-scoped), applied server-side (an apply that creates needs create
# as well as patch), replaced (update) when apply alone cannot undo a hand edit, and pruned when the
# spec drops them.
- apiGroups: ['']
  resources: [services, configmaps]
  verbs: [list, watch, create, patch, update, delete]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [list, watch, create, patch, update, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [list, watch, create, patch, update, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, watch, create, patch, update, delete]
# Base backups run as Jobs (a request's Job is never changed, only created and, once done, deleted).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, patch, update, delete]
# The database's read-only Service has no selector: the operator publishes its endpoints.
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch, create, patch, update, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies, ingresses]
  verbs: [list, watch, create, patch, update, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [list, watch, create, patch, update, delete]
# spec.monitoring, when the Prometheus Operator is installed: one PodMonitor per tier.
- apiGroups: [monitoring.coreos.com]
  resources: [podmonitors]
  verbs: [list, watch, create, patch, update, delete]
# Cache and database pods: watched for readiness; only their role label is patched (Services select by
# it); a database instance that must turn standby is restarted (deleted; its StatefulSet recreates it).
- apiGroups: ['']
  resources: [pods]
  verbs: [list, watch, patch, delete]
# Volume claims of the data tiers: grown in place when storage.size grows (never created or deleted
# here: their StatefulSets create them, and they outlive the app unless deletionPolicy says Delete).
- apiGroups: ['']
  resources: [persistentvolumeclaims]
  verbs: [list, patch]
# What the operator did, on the ScalableApp; a repeat raises the Event's count (patch).
- apiGroups: ['']
  resources: [events]
  verbs: [create, patch]
{{- end -}}
