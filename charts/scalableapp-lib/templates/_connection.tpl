{{/*
The connection Secret, as operator/tiers/connection.ts: one Secret, `<app>-connection`, with every
address and login the app's pods need, mounted with envFrom; its data's digest on the pod template
rolls the pods when it changes. A chart either creates it (it knows the entries) or uses an existing
one, `.Values.connection.secretName` (the operator's, or another chart's of the same app).
*/}}

{{/* The Secret's name: the given one, else `<release>-connection`. Takes the context. */}}
{{- define "scalableapp-lib.connection.name" -}}
{{- .Values.connection.secretName | default (printf "%s-connection" .Release.Name) -}}
{{- end }}

{{/*
The `scalableapp.io/connection-hash` value, as connectionHash(): of `data` (the entries the chart
writes, plain strings) when it creates the Secret; of the given Secret, from `connection.hash` or
else read from the cluster (at install and upgrade; `helm template` cannot see it and gives nothing,
so the caller leaves the annotation out). Takes context, data, and optionally configMapName (see
caConfigMap).
*/}}
{{- define "scalableapp-lib.connection.hash" -}}
{{- $values := .context.Values.connection -}}
{{- $ca := dict "context" .context "configMapName" .configMapName -}}
{{- if not $values.secretName -}}
{{- $encoded := dict -}}
{{- range $k, $v := .data }}{{ $_ := set $encoded $k ($v | toString | b64enc) }}{{ end -}}
{{- include "scalableapp-lib.connection.digest" (merge (dict "data" $encoded) $ca) -}}
{{- else if $values.hash -}}
{{- $values.hash -}}
{{- else -}}
{{- $live := lookup "v1" "Secret" .context.Release.Namespace $values.secretName -}}
{{- if $live -}}{{ include "scalableapp-lib.connection.digest" (merge (dict "data" ($live.data | default dict)) $ca) }}{{- end -}}
{{- end -}}
{{- end }}

{{/*
The ConfigMap of the app's CA the pods mount: `configMapName` when the caller gives one (the
consumers chart's default, its queue's), else the values' ca.configMapName; nothing without one.
Takes context, configMapName.
*/}}
{{- define "scalableapp-lib.connection.caConfigMap" -}}
{{- with .configMapName | default (.context.Values.ca | default dict).configMapName }}{{ . }}{{ end -}}
{{- end }}

{{/*
The certificate of the app's CA the pods mount (the values' `ca`), or nothing without one: ca.cert,
else the ConfigMap's ca.crt (lookup, at install and upgrade). Takes context, configMapName.
*/}}
{{- define "scalableapp-lib.connection.caCert" -}}
{{- with include "scalableapp-lib.connection.caConfigMap" . -}}
{{- (($.context.Values.ca | default dict).cert) | default (dig "data" "ca.crt" "" (lookup "v1" "ConfigMap" $.context.Release.Namespace . | default dict)) -}}
{{- end -}}
{{- end }}

{{/*
connectionHash(secret, caCert): the digest of the Secret's data (base64 values, as `data` holds
them) and of the CA certificate the URLs name as sslrootcert, under its path: a new CA rolls the pods
(clients read the file when they start). Takes context, data, configMapName.
*/}}
{{- define "scalableapp-lib.connection.digest" -}}
{{- $digested := deepCopy .data -}}
{{- with include "scalableapp-lib.connection.caCert" . -}}
{{- $_ := set $digested (include "scalableapp-lib.tls.caFile" $.context) . -}}
{{- end -}}
{{- include "scalableapp-lib.contentHash" $digested -}}
{{- end }}

{{/*
The CA certificate as a file in the app's pods (caVolume() in operator/tiers/tls.ts), from the
ConfigMap of caConfigMap (the database, shards, cache or queue chart's `<release>-ca-cert`): the
volume mount (what: mount) or the volume (what: volume). Takes context, what, configMapName.
*/}}
{{- define "scalableapp-lib.connection.caFiles" -}}
{{- with include "scalableapp-lib.connection.caConfigMap" . -}}
{{- if eq $.what "mount" }}
- name: ca
  mountPath: /etc/scalableapp/ca
  readOnly: true
{{- else }}
# The app's CA certificate, which the clients verify the servers against (sslrootcert, *_CA_FILE).
- name: ca
  configMap:
    name: {{ . | quote }}
{{- end -}}
{{- end -}}
{{- end }}

{{/* The Secret the chart creates (only without connection.secretName). Takes context, data. */}}
{{- define "scalableapp-lib.connection.secret" -}}
apiVersion: v1
kind: Secret
type: Opaque
metadata:
  {{- include "scalableapp-lib.metadata" (dict "context" .context "component" "connection" "name" (include "scalableapp-lib.connection.name" .context)) | nindent 2 }}
data:
  {{- range $k, $v := .data }}
  {{ $k }}: {{ $v | toString | b64enc }}
  {{- end }}
{{- end }}

{{/*
The variables the operator hands every app container (INJECTED_ENV in operator/api/common.ts, kept
equal by charts/test/chart-files.test.ts), space-separated: a user env of one of these names would
hide the operator's value, so the web and consumers charts refuse it as the CRD does.
*/}}
{{- define "scalableapp-lib.injectedEnv" -}}
SCALABLEAPP_NAME WEB_URL CACHE_URL CACHE_REPLICAS_URL CACHE_DEFAULT_TTL_SECONDS SESSION_STORE SESSION_STORE_URL SESSION_TTL_SECONDS ASSET_BASE_PATH ASSET_VERSION DATABASE_URL DATABASE_READ_URL SHARD_MAP_CONFIGMAP SHARD_MAP_PATH SHARD_KEY SHARDS_USER SHARDS_PASSWORD SHARDS_SSLMODE SHARDS_SSLROOTCERT CACHE_CA_FILE QUEUE_URL QUEUE_CA_FILE QUEUE_NAME
{{- end }}
