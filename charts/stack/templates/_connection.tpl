{{/*
The app's one connection Secret, `<release>-connection`, as connectionEntries() in
operator/tiers/connection.ts: every tier's address and login, for the web tier and the consumers
(envFrom). The entries of each tier follow that tier's *Entries() builder.
*/}}

{{/* encodeURIComponent(): Go's query escaping, minus what JavaScript leaves as it is. */}}
{{- define "stack.uriComponent" -}}
{{- urlquery . | replace "+" "%20" | replace "%21" "!" | replace "%27" "'" | replace "%28" "(" | replace "%29" ")" | replace "%2A" "*" -}}
{{- end }}

{{/* Fills .entries (a dict) with the plain entries of .context's app. */}}
{{- define "stack.connectionEntries" -}}
{{- $ctx := .context -}}
{{- $v := $ctx.Values -}}
{{- $r := $ctx.Release.Name -}}
{{- $ns := $ctx.Release.Namespace -}}
{{- $e := .entries -}}
{{- $_ := set $e "SCALABLEAPP_NAME" $r -}}
{{- if $v.tiers.web -}}
{{- $_ := set $e "WEB_URL" (include "web.url" $ctx.Subcharts.web) -}}
{{- end -}}
{{- if $v.tiers.cache -}}
{{- $pw := include "stack.uriComponent" (include "stack.credential" (dict "context" $ctx "tier" "cache" "field" "password")) -}}
{{- /* With TLS, rediss:// and the CA the certificate chains to (Redis URLs have no parameter for it). */ -}}
{{- $tls := dig "tls" "enabled" true $v.cache -}}
{{- $scheme := ternary "rediss" "redis" $tls -}}
{{- $url := printf "%s://:%s@%s-cache.%s.svc:6379/0" $scheme $pw $r $ns -}}
{{- $ttl := int64 $v.cache.defaultTTLSeconds -}}
{{- $_ := set $e "CACHE_URL" $url -}}
{{- $_ := set $e "CACHE_REPLICAS_URL" (printf "%s://:%s@%s-cache-replicas.%s.svc:6379/0" $scheme $pw $r $ns) -}}
{{- $_ := set $e "CACHE_DEFAULT_TTL_SECONDS" (toString $ttl) -}}
{{- if $tls -}}
{{- $_ := set $e "CACHE_CA_FILE" (include "scalableapp-lib.tls.caFile" .) -}}
{{- end -}}
{{- if and $v.tiers.web (eq $v.web.sessions "cache") -}}
{{- /* Sessions in the shared cache: any web replica serves any request, no sticky sessions. */ -}}
{{- $_ := set $e "SESSION_STORE" "redis" -}}
{{- $_ := set $e "SESSION_STORE_URL" $url -}}
{{- $_ := set $e "SESSION_TTL_SECONDS" (toString (ternary $ttl 86400 (gt $ttl 0))) -}}
{{- end -}}
{{- end -}}
{{- if $v.tiers.edgeCache -}}
{{- $_ := set $e "ASSET_BASE_PATH" $v.edgeCache.pathPrefix -}}
{{- $_ := set $e "ASSET_VERSION" (toString $v.edgeCache.assetVersion) -}}
{{- end -}}
{{- if $v.tiers.database -}}
{{- $pw := include "stack.uriComponent" (include "stack.credential" (dict "context" $ctx "tier" "database" "field" "appPassword")) -}}
{{- /* With TLS, libpq (and node-postgres) verify the server's certificate and name against the app's CA. */ -}}
{{- $tls := ternary (printf "?sslmode=verify-full&sslrootcert=%s" (include "scalableapp-lib.tls.caFile" .)) "" (dig "tls" "enabled" true $v.database) -}}
{{- $_ := set $e "DATABASE_URL" (printf "postgresql://app:%s@%s-db-rw.%s.svc:5432/app%s" $pw $r $ns $tls) -}}
{{- $_ := set $e "DATABASE_READ_URL" (printf "postgresql://app:%s@%s-db-ro.%s.svc:5432/app%s" $pw $r $ns $tls) -}}
{{- end -}}
{{- if $v.tiers.shards -}}
{{- $_ := set $e "SHARD_MAP_CONFIGMAP" (include "stack.shardMapName" $ctx) -}}
{{- $_ := set $e "SHARD_MAP_PATH" "/etc/scalableapp/shard-map/shard-map.json" -}}
{{- $_ := set $e "SHARD_KEY" $v.shards.key -}}
{{- $_ := set $e "SHARDS_USER" "app" -}}
{{- $_ := set $e "SHARDS_PASSWORD" (include "stack.credential" (dict "context" $ctx "tier" "shards" "field" "appPassword")) -}}
{{- /* The router builds each shard's connection from these (libpq's names for them). */ -}}
{{- if dig "tls" "enabled" true $v.shards -}}
{{- $_ := set $e "SHARDS_SSLMODE" "verify-full" -}}
{{- $_ := set $e "SHARDS_SSLROOTCERT" (include "scalableapp-lib.tls.caFile" .) -}}
{{- else -}}
{{- $_ := set $e "SHARDS_SSLMODE" "disable" -}}
{{- end -}}
{{- end -}}
{{- if $v.tiers.queue -}}
{{- $user := include "stack.uriComponent" (include "stack.credential" (dict "context" $ctx "tier" "queue" "field" "username")) -}}
{{- $pw := include "stack.uriComponent" (include "stack.credential" (dict "context" $ctx "tier" "queue" "field" "password")) -}}
{{- /* The vhost `/`, URL-encoded as AMQP URIs require. With TLS, amqps:// and the CA (AMQP URIs have no parameter for it). */ -}}
{{- $tls := dig "tls" "enabled" true $v.queue -}}
{{- $_ := set $e "QUEUE_URL" (printf "%s://%s:%s@%s-mq.%s.svc:5672/%%2F" (ternary "amqps" "amqp" $tls) $user $pw $r $ns) -}}
{{- if $tls -}}
{{- $_ := set $e "QUEUE_CA_FILE" (include "scalableapp-lib.tls.caFile" .) -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* The Secret's data: every entry base64-encoded (as the operator writes it: never stringData). */}}
{{- define "stack.connectionData" -}}
{{- $entries := dict -}}
{{- include "stack.connectionEntries" (dict "context" . "entries" $entries) -}}
{{- $data := dict -}}
{{- range $k, $v := $entries -}}
{{- $_ := set $data $k ($v | toString | b64enc) -}}
{{- end -}}
{{- toYaml $data -}}
{{- end }}

{{- define "stack.connectionName" -}}{{ .Release.Name }}-connection{{- end }}

{{/*
connectionHash(secret, caCert): the digest the pods that mount the Secret carry, so a change rolls
them; with TLS it covers the CA certificate too (under its path), so a new CA rolls them as well.
*/}}
{{- define "stack.connectionHash" -}}
{{- $data := include "stack.connectionData" . | fromYaml -}}
{{- with (include "stack.ca" . | fromJson).cert -}}
{{- $_ := set $data (include "scalableapp-lib.tls.caFile" $) . -}}
{{- end -}}
{{- include "scalableapp-lib.contentHash" $data -}}
{{- end }}
