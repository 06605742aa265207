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
{{- include "stack.seedTls" . -}}
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
{{- include "stack.wireMonitoring" . -}}
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
{{- $_ := set $v.web "ca" (include "stack.caMount" . | fromYaml) -}}
{{- end -}}
{{- if $v.tiers.consumers -}}
{{- $_ := set $v.consumersChart "connection" (deepCopy $connection) -}}
{{- include "stack.wireConsumersQueue" . -}}
{{- $_ := set $v.consumersChart "shardMap" (ternary (dict "configMapName" (include "stack.shardMapName" .)) dict (not (empty $v.tiers.shards))) -}}
{{- $_ := set $v.consumersChart "ca" (include "stack.caMount" . | fromYaml) -}}
{{- end -}}
{{- end }}

{{/*
The consumers' queue is this release's (its connection entries come from the umbrella's Secret):
whether it serves TLS, for KEDA and the helm test. With TLS their test asks over openssl s_client,
which the broker's image has: unless the values name a test image, it is the queue's.
*/}}
{{- define "stack.wireConsumersQueue" -}}
{{- $v := .Values -}}
{{- $tls := dig "tls" "enabled" true $v.queue -}}
{{- $_ := set $v.consumersChart "queue" (dict "tls" $tls) -}}
{{- if and $tls (not (dig "test" "image" "" $v.consumersChart)) -}}
{{- $_ := set $v.consumersChart "test" (dict "image" $v.queue.image) -}}
{{- end -}}
{{- end }}

{{/* The tiers that serve TLS, by values key, space-separated (usesTls(): any of them). */}}
{{- define "stack.tlsTiers" -}}
{{- $v := .Values -}}
{{- $tiers := list -}}
{{- range $key := list "database" "shards" "cache" "queue" -}}
{{- if and (get $v.tiers $key) (dig "tls" "enabled" true (get $v $key | default dict)) }}{{ $tiers = append $tiers $key }}{{ end -}}
{{- end -}}
{{- join " " $tiers -}}
{{- end }}

{{/*
One CA for the app, as the operator keeps one for the database, the shards, the cache and the queue: made ONCE
here (the value a tier gives, else the release's <release>-ca, else a new one) and handed to each
tier that serves TLS as its tls.ca, each told to leave the CA's objects to the umbrella
(templates/tls.yaml), which renders them once. The connection hash covers its certificate.
*/}}
{{- define "stack.seedTls" -}}
{{- $v := .Values -}}
{{- $tiers := include "stack.tlsTiers" . | splitList " " | compact -}}
{{- if $tiers -}}
{{- $given := dict -}}
{{- range $tiers }}{{ if not $given.cert }}{{ $given = dig "tls" "ca" dict (get $v .) }}{{ end }}{{ end -}}
{{- $ca := include "scalableapp-lib.tls.ca" (dict "context" . "given" $given) | fromJson -}}
{{- range $tiers -}}
{{- $tls := get (get $v .) "tls" -}}
{{- $_ := set $tls "ca" (deepCopy $ca) -}}
{{- $_ := set $tls "appWide" false -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* The app's CA ({cert, key}) as seeded, JSON; {} when no tier serves TLS. */}}
{{- define "stack.ca" -}}
{{- $first := include "stack.tlsTiers" . | splitList " " | compact | first -}}
{{- toJson (ternary (dig "tls" "ca" dict (get .Values ($first | default "database") | default dict)) dict (not (empty $first))) -}}
{{- end }}

{{/* The `ca` values of the web and consumers charts: the CA's ConfigMap to mount, when there is one. */}}
{{- define "stack.caMount" -}}
{{- if include "stack.tlsTiers" . -}}
configMapName: {{ include "scalableapp-lib.tls.caConfigMapName" . }}
{{- else -}}
{}
{{- end -}}
{{- end }}

{{/*
The spec's monitoring, handed to every enabled tier chart that serves metrics, as the operator
applies it to every tier: what the top level gives wins (resources key by key), the rest is the
tier's own (its defaults, the spec's, or what its key says). Each Postgres chart takes the postgres exporter image, the cache its own,
the edge cache nginx's; the queue serves RabbitMQ's endpoint and takes neither image nor resources.
*/}}
{{- define "stack.wireMonitoring" -}}
{{- $v := .Values -}}
{{- $m := $v.monitoring | default dict -}}
{{- if $m.enabled -}}
{{- $images := dict "database" "postgres" "shards" "postgres" "cache" "cache" "edgeCache" "edgeCache" -}}
{{- range $key := list "database" "shards" "cache" "queue" "edgeCache" -}}
{{- if and (get $v.tiers $key) (hasKey $v $key) -}}
{{- $chart := get $v $key -}}
{{- $tier := deepCopy ($chart.monitoring | default dict) -}}
{{- $_ := set $tier "enabled" true -}}
{{- if hasKey $m "scrapers" }}{{ $_ := set $tier "scrapers" (deepCopy $m.scrapers) }}{{ end -}}
{{- if hasKey $images $key -}}
{{- if hasKey $m "resources" }}{{ $_ := set $tier "resources" (mustMergeOverwrite (deepCopy ($tier.resources | default dict)) (deepCopy $m.resources)) }}{{ end -}}
{{- $kind := get $images $key -}}
{{- $image := get ($m.exporterImages | default dict) $kind -}}
{{- if $image }}{{ $_ := set $tier "exporterImages" (dict $kind $image) }}{{ end -}}
{{- end -}}
{{- $_ := set $chart "monitoring" $tier -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
