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

{{/*
Every image the installed tiers run, as [field, image] pairs named by the umbrella's values keys, in
the order of imageUses() (operator/api/image-pins.ts): each tier's own, each consumer's, then with a
tier's monitoring on its exporter, as the wiring left it (the spec's monitoring.exporterImages, else
the tier chart's default), named once under the top-level `monitoring` when that is on. A JSON list,
for scalableapp-lib.images.unpinnedNote.
*/}}
{{- define "stack.images" -}}
{{- $v := .Values -}}
{{- $uses := list -}}
{{- range $key := list "web" "cache" "database" "shards" "queue" "consumers" "edgeCache" -}}
{{- if get $v.tiers $key -}}
{{- if eq $key "consumers" -}}
{{- range $i, $c := $v.consumers | default list }}{{ $uses = append $uses (list (printf "consumers[%d].image" $i) $c.image) }}{{ end -}}
{{- else if has $key (list "database" "shards") -}}
{{- $tier := get $v $key -}}
{{- $uses = append $uses (list (printf "%s.%s" $key (ternary "image" "version" (not (empty $tier.image)))) (include "scalableapp-lib.postgres.image" (dict "spec" $tier))) -}}
{{- else -}}
{{- $uses = append $uses (list (printf "%s.image" $key) (get $v $key).image) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $fields := list -}}
{{- range $exporter := list (list "database" "postgres") (list "shards" "postgres") (list "cache" "cache") (list "edgeCache" "edgeCache") -}}
{{- $key := index $exporter 0 }}{{ $kind := index $exporter 1 -}}
{{- $m := (get $v $key | default dict).monitoring | default dict -}}
{{- $field := ternary (printf "monitoring.exporterImages.%s" $kind) (printf "%s.monitoring.exporterImages.%s" $key $kind) (not (empty ($v.monitoring | default dict).enabled)) -}}
{{- if and (get $v.tiers $key) $m.enabled (not (has $field $fields)) -}}
{{- $fields = append $fields $field -}}
{{- $uses = append $uses (list $field (get ($m.exporterImages | default dict) $kind)) -}}
{{- end -}}
{{- end -}}
{{- toJson $uses -}}
{{- end }}
