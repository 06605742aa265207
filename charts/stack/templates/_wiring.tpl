{{/*
What the operator derives from the whole spec and a tier chart alone cannot know, written into the
enabled tiers' values before they render. A subchart's .Values is the very map the umbrella holds
under the tier's key, so setting a key there is how a value computed here reaches a tier chart
(Helm has no other way down: values files cannot be templated). It must happen before any tier
chart's template runs: see templates/wiring/before/the/tier/charts.yaml.
*/}}
{{- define "stack.wire" -}}
{{- include "stack.checkTiers" . -}}
{{- include "stack.seedCredentials" . -}}
{{- $v := .Values -}}
{{- $charts := splitList " " (include "stack.objectTiers" .) -}}
{{- if $v.tiers.consumers -}}
{{- $charts = append $charts "consumersChart" -}}
{{- $_ := set $v.consumersChart "consumers" ($v.consumers | default list) -}}
{{- end -}}
{{- range $key := $charts -}}
{{- if hasKey $v $key -}}
{{- $chart := get $v $key -}}
{{- /* The spec has one topology for every tier, and the app-wide policies are rendered once, here. */ -}}
{{- $_ := set $chart "platform" (dict "topology" (deepCopy $v.topology)) -}}
{{- $_ := set $chart "networkPolicies" (dict "appWide" false) -}}
{{- end -}}
{{- end -}}
{{- if $v.tiers.edgeCache -}}
{{- /* The web tier routes the asset path to the edge cache, whose only egress is the web pods' port. */ -}}
{{- $_ := set $v.web "edgeCache" (dict "pathPrefix" $v.edgeCache.pathPrefix) -}}
{{- $_ := set $v.edgeCache "web" (dict "port" $v.web.port) -}}
{{- end -}}
{{- /* The pods that take their environment from the app's connection Secret, and roll when it changes. */ -}}
{{- $connection := dict "secretName" (include "stack.connectionName" .) "hash" (include "stack.connectionHash" .) "entries" dict -}}
{{- if $v.tiers.web -}}
{{- $_ := set $v.web "connection" (deepCopy $connection) -}}
{{- $_ := set $v.web "shardMap" (ternary (dict "configMapName" (include "stack.shardMapName" .)) dict (not (empty $v.tiers.shards))) -}}
{{- end -}}
{{- if $v.tiers.consumers -}}
{{- $_ := set $v.consumersChart "connection" (deepCopy $connection) -}}
{{- $_ := set $v.consumersChart "queue" dict -}}
{{- $_ := set $v.consumersChart "shardMap" (ternary (dict "configMapName" (include "stack.shardMapName" .)) dict (not (empty $v.tiers.shards))) -}}
{{- end -}}
{{- end }}
