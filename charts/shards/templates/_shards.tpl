{{/*
Names, the shard map and the shards as Postgres clusters. They mirror operator/tiers/shards.ts and
operator/sharding/shard-map.ts; charts/test/shards.parity.test.ts proves the rendered objects are
the operator's.
*/}}

{{- define "shards.mapName" -}}{{ .Release.Name }}-shard-map{{- end }}
{{- define "shards.credentialsName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-shards-credentials" .Release.Name) -}}
{{- end }}
{{/* A hot key's shard, named by a digest of the key: stable whatever the order of the list. */}}
{{- define "shards.hotName" -}}
{{- printf "%s-shard-hot-%s" .context.Release.Name (sha256sum .key | trunc 8) -}}
{{- end }}

{{/*
Every shard's name as a JSON list, in the map's order: the hash shards, then one per hot key. Fails
on a hot key listed twice, as the spec's list (keyed by `key`) cannot hold it.
*/}}
{{- define "shards.names" -}}
{{- $names := list -}}
{{- range $i := until (int .Values.count) -}}
{{- $names = append $names (printf "%s-shard-%d" $.Release.Name $i) -}}
{{- end -}}
{{- $keys := list -}}
{{- range $i, $d := .Values.dedicated -}}
{{- if has $d.key $keys -}}
{{- fail (printf "dedicated[%d].key: hot key %q is listed twice" $i $d.key) -}}
{{- end -}}
{{- $keys = append $keys $d.key -}}
{{- $names = append $names (include "shards.hotName" (dict "context" $ "key" $d.key)) -}}
{{- end -}}
{{- toJson $names -}}
{{- end }}

{{/*
A JSON string as JavaScript's JSON.stringify writes it (serializeShardMap): quotes, backslashes and
control characters escaped, nothing else. Go's toJson would also escape <, >, & and U+2028/9, and
the map's text must be the operator's to the byte.
*/}}
{{- define "shards.jsonString" -}}
{{- $s := . | replace "\\" "\\\\" | replace "\"" "\\\"" -}}
{{- $short := dict "8" "\\b" "9" "\\t" "10" "\\n" "12" "\\f" "13" "\\r" -}}
{{- range $n := until 32 -}}
{{- $s = replace (printf "%c" $n) (get $short (toString $n) | default (printf "\\u%04x" $n)) $s -}}
{{- end -}}
"{{ $s }}"
{{- end }}

{{/*
The map the operator publishes first (version 1, no pending ring): shards and hot keys with every
shard's read-write and read-only Service, fields in serializeShardMap's order and layout. The ring
itself is computed by whoever routes, from this document (docs/sharding.md). Takes the context and
`version` (what shards.publishedVersion says).
*/}}
{{- define "shards.map" -}}
{{- $ns := .context.Release.Namespace -}}
{{- $entries := list -}}
{{- range include "shards.names" .context | fromJsonArray -}}
{{- $entries = append $entries (printf "    {\n      \"name\": \"%s\",\n      \"host\": \"%s-rw.%s.svc\",\n      \"port\": 5432,\n      \"database\": \"app\",\n      \"readHost\": \"%s-ro.%s.svc\"\n    }" . . $ns . $ns) -}}
{{- end -}}
{{- $hot := list -}}
{{- range .context.Values.dedicated -}}
{{- $hot = append $hot (printf "    {\n      \"key\": %s,\n      \"shard\": \"%s\"\n    }" (include "shards.jsonString" .key) (include "shards.hotName" (dict "context" $.context "key" .key))) -}}
{{- end -}}
{
  "version": {{ .version }},
  "key": {{ include "shards.jsonString" .context.Values.key }},
  "hash": "sha256-64be",
  "virtualNodes": {{ int .context.Values.virtualNodes }},
  "shards": [
{{ join ",\n" $entries }}
  ],
  "dedicated": {{ if $hot }}[
{{ join ",\n" $hot }}
  ]{{ else }}[]{{ end }}
}
{{ end }}

{{/* The ring of a map (shards minus hot ones, virtual nodes, hot keys) as one comparable text. */}}
{{- define "shards.ring" -}}
{{- $hotShards := list -}}
{{- $hot := list -}}
{{- range .dedicated -}}
{{- $hotShards = append $hotShards .shard -}}
{{- $hot = append $hot (printf "%s=%s" .shard .key) -}}
{{- end -}}
{{- $ring := list -}}
{{- range .shards -}}
{{- if not (has .name $hotShards) }}{{ $ring = append $ring .name }}{{ end -}}
{{- end -}}
{{- toJson (dict "virtualNodes" (int .virtualNodes) "ring" (sortAlpha $ring) "hot" (sortAlpha $hot)) -}}
{{- end }}

{{/*
The version to publish, after checking the spec's rules on changes against the published map
(lookup, so at install and upgrade; `helm template` sees none). A ring that would change — count,
virtualNodes or dedicated — is refused: moving keys between shards is the operator's resharding
(copy, fence, verify, flip; docs/adr/0007-resharding.md), and publishing a new ring here would
route keys to shards that do not hold their rows. An unchanged ring keeps its version. A map that
is not valid JSON is not trusted as history, as the operator does not: version 1 again.
*/}}
{{- define "shards.publishedVersion" -}}
{{- $live := lookup "v1" "ConfigMap" .Release.Namespace (include "shards.mapName" .) -}}
{{- $text := dig "data" "shard-map.json" "" ($live | default dict) -}}
{{- $old := $text | fromJson -}}
{{- if and $text (not (hasKey $old "Error")) (hasKey $old "shards") -}}
{{- if hasKey $old "pending" -}}
{{- fail (printf "count: the published shard map has a pending ring (version %d): a reshard is under way, which only the operator can finish" (int $old.pending.version)) -}}
{{- end -}}
{{- if ne (toString $old.key) (toString .Values.key) -}}
{{- fail (printf "key: key is immutable: changing the sharding key would move every row (published %q, asked for %q)" (toString $old.key) (toString .Values.key)) -}}
{{- end -}}
{{- $want := dict "virtualNodes" .Values.virtualNodes "shards" (list) "dedicated" (list) -}}
{{- range include "shards.names" . | fromJsonArray }}{{ $_ := set $want "shards" (append $want.shards (dict "name" .)) }}{{ end -}}
{{- range .Values.dedicated }}{{ $_ := set $want "dedicated" (append $want.dedicated (dict "key" .key "shard" (include "shards.hotName" (dict "context" $ "key" .key)))) }}{{ end -}}
{{- $was := include "shards.ring" $old | fromJson -}}
{{- $is := include "shards.ring" $want | fromJson -}}
{{- $field := "" -}}
{{- if ne (toJson $was.hot) (toJson $is.hot) }}{{ $field = "dedicated" }}{{ end -}}
{{- if ne (int $was.virtualNodes) (int $is.virtualNodes) }}{{ $field = "virtualNodes" }}{{ end -}}
{{- if ne (toJson $was.ring) (toJson $is.ring) }}{{ $field = "count" }}{{ end -}}
{{- if $field -}}
{{- fail (printf "%s: the shard ring cannot change without the operator: the published ring (%d shards, %d virtual nodes, %d hot keys) would become %d shards, %d virtual nodes, %d hot keys, moving keys to shards that do not hold their rows. Resharding moves the data first (docs/sharding.md) and needs the operator" $field (len $was.ring) (int $was.virtualNodes) (len $was.hot) (len $is.ring) (int $is.virtualNodes) (len $is.hot)) -}}
{{- end -}}
{{- int $old.version -}}
{{- else -}}
1
{{- end -}}
{{- end }}

{{/*
spec.shards.resources: the values' `resources` merged with the spec's default quantity by quantity (a
limit given alone keeps the default requests), a request above its limit refused, as in the spec.
*/}}
{{- define "shards.resources" -}}
{{- include "scalableapp-lib.mergedResources" (dict "given" .Values.resources "defaults" (dict "requests" (dict "cpu" "250m" "memory" "512Mi") "limits" (dict "memory" "1Gi")) "floor" (dict "min" "128Mi" "server" "Postgres") "field" "resources") -}}
{{- end }}

{{/*
Refuses a recorded primary or a given certificate for a shard that does not exist (a typo would be
silently ignored).
*/}}
{{- define "shards.checkPrimaries" -}}
{{- $names := include "shards.names" . | fromJsonArray -}}
{{- range $field, $byShard := dict "primaries" .Values.primaries "tls.certificates" .Values.tls.certificates -}}
{{- range $shard, $_ := $byShard -}}
{{- if not (has $shard $names) -}}
{{- fail (printf "%s.%s: there is no shard %s (%s)" $field $shard $shard (join ", " $names)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
One shard as a Postgres cluster (scalableapp-lib/templates/_postgres.tpl), as shardCluster()
describes it: its own pods by the scalableapp.io/shard label, replicasPerShard replicas (ANY
synchronousReplicas of them acknowledge each commit), the shared login. Fills the dict it is given
(context, name).
*/}}
{{- define "shards.cluster" -}}
{{- $v := .context.Values -}}
{{- $_ := set . "component" "shard" -}}
{{- $_ := set . "extraLabels" (dict "scalableapp.io/shard" .name) -}}
{{- $_ := set . "spec" (dict
  "version" $v.version
  "image" $v.image
  "resources" (include "shards.resources" .context | fromYaml)
  "deletionPolicy" $v.deletionPolicy
  "replicas" $v.replicasPerShard
  "storage" $v.storage
  "synchronousReplicas" $v.synchronousReplicas
  "tls" (dict "enabled" $v.tls.enabled)) -}}
{{- /* One CA for every shard, a certificate of its own for each (its names are its own Services'). */ -}}
{{- $_ := set . "tlsSecretName" ($v.tls.existingSecret | default (printf "%s-tls" .name)) -}}
{{- $_ := set . "given" (get ($v.tls.certificates | default dict) .name) -}}
{{- $_ := set . "replicasField" "replicasPerShard" -}}
{{- $_ := set . "credentialsName" (include "shards.credentialsName" .context) -}}
{{- $_ := set . "primary" (get ($v.primaries | default dict) .name) -}}
{{- $_ := set . "primaryField" (printf "primaries.%s" .name) -}}
{{- $_ := set . "monitoring" (include "scalableapp-lib.postgres.monitoring" $v.monitoring | fromYaml) -}}
{{- end }}
