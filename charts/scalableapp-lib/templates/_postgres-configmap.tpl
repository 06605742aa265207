{{/*
One Postgres cluster's ConfigMap: postgresql.conf, pg_hba.conf (and its fenced twin), the start and
readiness scripts, the exporter's queries with monitoring, and the record
of the primary every instance starts from (a pgClusterObjects() object, as each one below).
*/}}
{{- define "scalableapp-lib.postgres.configMap" -}}
{{- $c := . }}
{{- $primary := include "scalableapp-lib.postgres.primary" . }}
{{- $configName := include "scalableapp-lib.postgres.configName" . }}
apiVersion: v1
kind: ConfigMap
metadata:
  {{- include "scalableapp-lib.member.metadata" (merge (dict "name" $configName) $c) | nindent 2 }}
data:
  postgresql.conf: |
    {{- include "scalableapp-lib.postgres.conf" . | trimSuffix "\n" | nindent 4 }}
  pg_hba.conf: |
    {{- include "scalableapp-lib.postgres.hba" (dict "cluster" . "file" "pg_hba") | trimSuffix "\n" | nindent 4 }}
  pg_hba.fenced.conf: |
    {{- include "scalableapp-lib.postgres.hba" (dict "cluster" . "file" "pg_hba.fenced") | trimSuffix "\n" | nindent 4 }}
  {{- if include "scalableapp-lib.postgres.monitored" . }}
  # The exporter's own queries (POSTGRES_EXPORTER_QUERIES), mounted with the rest at /config.
  exporter-queries.yaml: |
    {{- include "scalableapp-lib.postgres.file" (dict "cluster" . "file" "exporter-queries.yaml") | trimSuffix "\n" | nindent 4 }}
  {{- end }}
  start.sh: |
    {{- include "scalableapp-lib.postgres.file" (dict "cluster" . "file" "start.sh") | trimSuffix "\n" | nindent 4 }}
  ready.sh: |
    {{- include "scalableapp-lib.postgres.file" (dict "cluster" . "file" "ready.sh") | trimSuffix "\n" | nindent 4 }}
  # What every instance starts from: the recorded primary starts as primary, the others follow it.
  primary: {{ $primary }}
{{- end }}
