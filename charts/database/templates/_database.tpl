{{/*
Names of the database tier, and the tier as one Postgres cluster for the library's templates. They
mirror operator/tiers/database.ts and operator/tiers/postgres-cluster.ts;
charts/test/database.parity.test.ts proves the rendered objects are the operator's.
*/}}

{{- define "database.name" -}}{{ .Release.Name }}-db{{- end }}
{{- define "database.credentialsName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-credentials" (include "database.name" .)) -}}
{{- end }}

{{/*
spec.database.resources: the values' `resources` merged with the spec's default quantity by quantity (a
limit given alone keeps the default requests), a request above its limit refused, as in the spec.
*/}}
{{- define "database.resources" -}}
{{- include "scalableapp-lib.mergedResources" (dict "given" .Values.resources "defaults" (dict "requests" (dict "cpu" "250m" "memory" "512Mi") "limits" (dict "memory" "1Gi")) "floor" (dict "min" "128Mi" "server" "Postgres") "field" "resources") -}}
{{- end }}

{{/*
The database tier as one Postgres cluster (scalableapp-lib/templates/_postgres.tpl), the shape
every cluster template takes. Templates return only text, so it fills the dict it is given:
  {{- $cluster := dict "context" . }}{{- include "database.cluster" $cluster }}
*/}}
{{- define "database.cluster" -}}
{{- $v := .context.Values -}}
{{- $_ := set . "component" "database" -}}
{{- $_ := set . "name" (include "database.name" .context) -}}
{{- $_ := set . "extraLabels" (dict) -}}
{{- $_ := set . "spec" (dict
  "version" $v.version
  "image" $v.image
  "resources" (include "database.resources" .context | fromYaml)
  "deletionPolicy" $v.deletionPolicy
  "replicas" $v.replicas
  "storage" $v.storage
  "synchronousReplicas" $v.synchronousReplicas
  "tls" (dict "enabled" $v.tls.enabled)) -}}
{{- $_ := set . "tlsSecretName" ($v.tls.existingSecret | default (printf "%s-tls" .name)) -}}
{{- $_ := set . "given" $v.tls.certificate -}}
{{- $_ := set . "credentialsName" (include "database.credentialsName" .context) -}}
{{- $_ := set . "primary" $v.primary -}}
{{- $_ := set . "primaryField" "primary" -}}
{{- $_ := set . "monitoring" (include "scalableapp-lib.postgres.monitoring" $v.monitoring | fromYaml) -}}
{{- end }}

{{/* The recorded primary: the value, or the first instance. Refuses a name that is no instance. */}}
{{- define "database.primary" -}}
{{- $cluster := dict "context" . -}}
{{- include "database.cluster" $cluster -}}
{{- include "scalableapp-lib.postgres.primary" $cluster -}}
{{- end }}
