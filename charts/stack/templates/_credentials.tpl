{{/*
The logins the connection Secret carries, generated ONCE here and handed to the tier charts as
their `auth` values, so the Secret a tier creates and the URLs the app gets hold the same password.
Each is the value given, else the one the tier's Secret already holds (upgrades keep it), else 32
random alphanumerics, as the tier charts do. A tier given an existing Secret (`auth.existingSecret`)
is read from it. Passwords only the tier itself uses (the Postgres superuser, the Erlang cookie) are
left to the tier chart.
*/}}

{{/* A key of a Secret in the release namespace, decoded; empty when the Secret or key is absent. */}}
{{- define "stack.secretKey" -}}
{{- $s := lookup "v1" "Secret" .context.Release.Namespace .name -}}
{{- dig "data" .key "" ($s | default dict) | b64dec -}}
{{- end }}

{{/*
One login field of a tier (context, tier, field, secret, key): the value, or read from the tier's
existing Secret, failing with the field when it cannot be read.
*/}}
{{- define "stack.login" -}}
{{- $auth := get (get .context.Values .tier) "auth" -}}
{{- if $auth.existingSecret -}}
{{- $value := include "stack.secretKey" (dict "context" .context "name" $auth.existingSecret "key" .key) -}}
{{- if not $value -}}
{{- fail (printf "%s.auth.existingSecret: Secret %q with key %q is not readable in %s: the connection Secret needs it (it must exist before install; helm template cannot read the cluster)" .tier $auth.existingSecret .key .context.Release.Namespace) -}}
{{- end -}}
{{- $value -}}
{{- else -}}
{{- get $auth .field -}}
{{- end -}}
{{- end }}

{{/* The logins each tier's connection entries need: field in `auth` ⇄ key in the tier's Secret. */}}
{{- define "stack.logins" -}}
cache: {secret: cache-auth, fields: {password: password}}
database: {secret: db-credentials, fields: {appPassword: app-password}}
shards: {secret: shards-credentials, fields: {appPassword: app-password}}
queue: {secret: mq-credentials, fields: {username: username, password: password}}
{{- end }}

{{- define "stack.seedCredentials" -}}
{{- $ctx := . -}}
{{- range $tier, $login := include "stack.logins" . | fromYaml -}}
{{- if get $ctx.Values.tiers $tier -}}
{{- $auth := get (get $ctx.Values $tier) "auth" -}}
{{- if not $auth.existingSecret -}}
{{- range $field, $key := $login.fields -}}
{{- if not (get $auth $field) -}}
{{- $kept := include "stack.secretKey" (dict "context" $ctx "name" (printf "%s-%s" $ctx.Release.Name $login.secret) "key" $key) -}}
{{- $_ := set $auth $field ($kept | default (randAlphaNum 32)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* One login of a tier as the connection entries need it (context, tier, field). */}}
{{- define "stack.credential" -}}
{{- $login := get (include "stack.logins" .context | fromYaml) .tier -}}
{{- include "stack.login" (merge (dict "key" (get $login.fields .field)) .) -}}
{{- end }}
