{{/*
Which tiers the umbrella installs. A tier is installed when `tiers.<tier>` is true: Helm decides
which subcharts exist from dependency conditions before any template runs, and a condition can only
read a boolean, not notice that the values name a tier. So a tier the values configure but do not
enable is refused here rather than silently left out, and the spec's cross-tier rules (the CEL rules
of the ScalableApp spec, operator/api/spec.ts) fail the render with the field and the rule's message.
*/}}

{{/* The tiers whose spec key is also their chart's values key (consumers: a list, see Chart.yaml). */}}
{{- define "stack.objectTiers" -}}web cache database shards queue edgeCache{{- end }}

{{/* Whether the values set a key to something (a key set to null, as `--set shards=null` leaves it, is unset). */}}
{{- define "stack.given" -}}{{ if and (hasKey .values .key) (not (kindIs "invalid" (get .values .key))) }}true{{ end }}{{- end }}

{{- define "stack.shardMapName" -}}{{ .Release.Name }}-shard-map{{- end }}

{{- define "stack.checkTiers" -}}
{{- $v := .Values -}}
{{- $hint := "(an omitted tier is not deployed; tools/install-stack.sh sets it for every tier the values name)" -}}
{{- $enabled := list -}}
{{- range $t := splitList " " (include "stack.objectTiers" .) -}}
{{- if get $v.tiers $t -}}
{{- $enabled = append $enabled $t -}}
{{- else if include "stack.given" (dict "values" $v "key" $t) -}}
{{- fail (printf "tiers.%s: the values configure %s, so set tiers.%s=true %s" $t $t $t $hint) -}}
{{- end -}}
{{- end -}}
{{- $consumers := $v.consumers | default list -}}
{{- if $v.tiers.consumers -}}
{{- if $consumers }}{{ $enabled = append $enabled "consumers" }}{{ end -}}
{{- else if or $consumers (include "stack.given" (dict "values" $v "key" "consumersChart")) -}}
{{- fail (printf "tiers.consumers: the values configure consumers, so set tiers.consumers=true %s" $hint) -}}
{{- end -}}
{{- if not $enabled -}}
{{- fail "tiers: spec must declare at least one tier (web, cache, database, shards, queue, consumers or edgeCache)" -}}
{{- end -}}
{{- if and $consumers (not $v.tiers.queue) -}}
{{- fail "consumers: consumers need a queue tier: add spec.queue" -}}
{{- end -}}
{{- if and $consumers $v.tiers.queue -}}
{{- $declared := list -}}
{{- range $v.queue.queues }}{{ $declared = append $declared .name }}{{ end -}}
{{- range $consumers -}}
{{- if not (has .queue $declared) -}}
{{- fail "consumers: every consumers[].queue must name a queue declared in spec.queue.queues" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.tiers.web (eq $v.web.sessions "cache") (not $v.tiers.cache) -}}
{{- fail "web.sessions: web.sessions is cache but there is no cache tier: add spec.cache or set sessions to none" -}}
{{- end -}}
{{- if and $v.tiers.edgeCache (not $v.tiers.web) -}}
{{- fail "edgeCache: edgeCache fronts the web tier: add spec.web" -}}
{{- end -}}
{{- /* A transition rule: the release's shard map shows the shards exist (lookup sees nothing under helm template). */ -}}
{{- if and (not $v.tiers.shards) (lookup "v1" "ConfigMap" .Release.Namespace (include "stack.shardMapName" .)) -}}
{{- fail "shards: shards cannot be removed once created: the data lives on them (reshard into the database first)" -}}
{{- end -}}
{{- end }}
