{{/*
Names and the broker's configuration, as operator/tiers/queue.ts and
operator/server-config/rabbitmq.ts write them; charts/test/queue.parity.test.ts proves the
rendered objects are the operator's. The texts that take no input (start.sh, advanced.config,
enabled_plugins) are copies in files/, written by tools/generate-chart-files.ts (its --check fails
when one is stale).
*/}}

{{- define "queue.name" -}}{{ .Release.Name }}-mq{{- end }}
{{- define "queue.headless" -}}{{ include "queue.name" . }}-headless{{- end }}
{{- define "queue.configName" -}}{{ include "queue.name" . }}-config{{- end }}
{{- define "queue.credentialsName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-credentials" (include "queue.name" .)) -}}
{{- end }}

{{/* Whether the brokers serve TLS only ("true" or empty): tls.enabled, on unless turned off (queueTls). */}}
{{- define "queue.tls" -}}
{{- if .Values.tls.enabled }}true{{ end -}}
{{- end }}

{{/* The Secret the brokers mount their certificate from: the given one, else the chart's `<release>-mq-tls`. */}}
{{- define "queue.tlsSecretName" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "queue.name" .)) -}}
{{- end }}

{{/*
The broker as one TLS server for the library's templates (scalableapp-lib/templates/_tls.tpl), as
mqServerNames() names it: its client Service (AMQP and the management API) and each node by its
headless name, through the wildcard and exactly (the Erlang distribution, which the nodes speak over
TLS, matches no wildcard; a scale-up issues the certificate again with the new nodes' names).
Templates return only text, so it fills the dict it is given:
{{- $server := dict "context" . }}{{- include "queue.server" $server }}
*/}}
{{- define "queue.server" -}}
{{- $_ := set . "component" "queue" -}}
{{- $_ := set . "name" (include "queue.name" .context) -}}
{{- $_ := set . "extraLabels" (dict) -}}
{{- $_ := set . "services" (list (include "queue.name" .context)) -}}
{{- $_ := set . "headless" (include "queue.headless" .context) -}}
{{- $hosts := list -}}
{{- range include "queue.nodes" .context | fromJsonArray }}{{ $hosts = append $hosts (regexReplaceAll "^[^@]*@" . "") }}{{ end -}}
{{- $_ := set . "exact" $hosts -}}
{{- $_ := set . "given" .context.Values.tls.certificate -}}
{{- end }}

{{/* The client Service's address, as mqHost(): the name the certificate holds and clients use. */}}
{{- define "queue.host" -}}{{ include "queue.name" . }}.{{ .Release.Namespace }}.svc{{- end }}

{{/*
The values as the operator's builder receives spec.queue: `resources` merged with zod's default
quantity by quantity, and the spec's rules that JSON Schema cannot say, each failing with the
field and the rule's message. Use: $queue := include "queue.spec" . | fromYaml
*/}}
{{- define "queue.spec" -}}
{{- $q := deepCopy .Values -}}
{{- $_ := set $q "resources" (include "scalableapp-lib.mergedResources" (dict "given" $q.resources "defaults" (dict "requests" (dict "cpu" "250m" "memory" "512Mi") "limits" (dict "memory" "1Gi")) "floor" (dict "min" "256Mi" "server" "RabbitMQ") "field" "resources") | fromYaml) -}}
{{- $n := int $q.replicas -}}
{{- if not (or (eq $n 1) (and (ge $n 3) (eq (mod $n 2) 1))) -}}
{{- fail (printf "replicas: replicas must be 1 or an odd number >= 3 (quorum queues need a majority), got %d" $n) -}}
{{- end -}}
{{- $names := list -}}
{{- range $i, $queue := $q.queues -}}
{{- if has $queue.name $names -}}
{{- fail (printf "queues[%d].name: queue %q is declared twice" $i $queue.name) -}}
{{- end -}}
{{- if hasPrefix "amq." $queue.name -}}
{{- fail (printf "queues[%d].name: name must not start with amq.: the broker reserves that prefix" $i) -}}
{{- end -}}
{{- $names = append $names $queue.name -}}
{{- end -}}
{{- toYaml $q -}}
{{- end }}

{{/* Every node's Erlang name (brokerNodeName), whether or not its pod exists right now. */}}
{{- define "queue.nodes" -}}
{{- $nodes := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $nodes = append $nodes (printf "rabbit@%s-%d.%s.%s.svc" (include "queue.name" $) $i (include "queue.headless" $) $.Release.Namespace) -}}
{{- end -}}
{{- toJson $nodes -}}
{{- end }}

{{/*
The resource alarms from the container's memory limit, as memoryHighWatermarkBytes() and
diskFreeLimitBytes(): the watermark at 40 % of the limit (none without a limit: RabbitMQ keeps its
relative default); the disk free limit at the memory limit (1 GiB without one), at most half the
volume. A dict: watermark (0 when there is none), diskFree.
*/}}
{{- define "queue.alarms" -}}
{{- $q := include "queue.spec" . | fromYaml -}}
{{- $limit := dig "limits" "memory" "" ($q.resources | default dict) -}}
{{- $bytes := dict "field" "resources.limits.memory" "percent" 100 "headroom" 0 "why" "the broker's memory alarms derive from it" -}}
{{- $memory := int64 1073741824 -}}
{{- $watermark := int64 0 -}}
{{- if ne (toString $limit) "" -}}
{{- $memory = include "scalableapp-lib.scaledBytes" (merge (dict "quantity" $limit) $bytes) | int64 -}}
{{- $watermark = div (mul $memory 40) 100 -}}
{{- if lt $watermark 1 }}{{ fail (printf "resources.limits.memory %s is too small" (toJson $limit)) }}{{ end -}}
{{- end -}}
{{- $volume := include "scalableapp-lib.scaledBytes" (dict "quantity" $q.storage.size "percent" 100 "headroom" 0 "field" "storage.size" "why" "the broker's disk alarm derives from it") | int64 -}}
{{- $diskFree := min $memory (div $volume 2) -}}
{{- if lt $diskFree 1 }}{{ fail (printf "storage.size %s is too small" (toJson $q.storage.size)) }}{{ end -}}
{{- toJson (dict "watermark" $watermark "diskFree" $diskFree) -}}
{{- end }}

{{/*
The listeners of AMQP and the management API, as listenerLines(): with TLS the same ports serve TLS
alone (`listeners.tcp = none`, no management.tcp key), from the mounted certificate; passwords, not
client certificates; TLS 1.3 and 1.2 only. A renewed certificate is read without a restart: the
start script has Erlang's PEM cache check the files every 20 s (ssl_pem_cache_clean).
*/}}
{{/* The certificate files of one TLS listener (the key prefix), where the pod mounts them (SERVER_TLS_PATHS). */}}
{{- define "queue.tlsFiles" }}
{{ . }}.cacertfile = /tls/ca.crt
{{ . }}.certfile = /tls/tls.crt
{{ . }}.keyfile = /tls/tls.key
{{- end }}

{{- define "queue.listeners" -}}
{{- if include "queue.tls" . }}
listeners.tcp = none
listeners.ssl.default = 5672
{{- include "queue.tlsFiles" "ssl_options" }}
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
management.ssl.port = 15672
{{- include "queue.tlsFiles" "management.ssl" }}
management.ssl.versions.1 = tlsv1.3
management.ssl.versions.2 = tlsv1.2
{{- else }}
listeners.tcp.default = 5672
management.tcp.port = 15672
{{- end }}
{{- end }}

{{/*
rabbitmq.conf as rabbitmqConf() writes it for the pods: the listeners above, every peer by name, the
definitions the start script writes imported at boot, the alarms above, statistics every second
(STATS_INTERVAL_MS) so the queue depth a scaler reads is fresh, and with monitoring the Prometheus
plugin's port and per-queue metrics.
*/}}
{{- define "queue.rabbitmqConf" -}}
{{- $nodes := include "queue.nodes" . | fromJsonArray -}}
{{- $alarms := include "queue.alarms" . | fromJson -}}
# Generated by the ScalableApp operator.
{{- include "queue.listeners" . }}
{{- if .Values.monitoring.enabled }}
prometheus.tcp.port = 15692
prometheus.return_per_object_metrics = true
{{- end }}
log.console = true
log.console.level = info
log.console.formatter = json
log.file = false
loopback_users.guest = true
cluster_formation.peer_discovery_backend = classic_config
{{- range $i, $node := $nodes }}
cluster_formation.classic_config.nodes.{{ add1 $i }} = {{ $node }}
{{- end }}
cluster_formation.target_cluster_size_hint = {{ len $nodes }}
{{- if ge (len $nodes) 3 }}
cluster_partition_handling = pause_minority
{{- end }}
definitions.import_backend = local_filesystem
definitions.local.path = /run/rabbitmq/definitions.json
definitions.skip_if_unchanged = true
{{- if gt (int64 $alarms.watermark) 0 }}
vm_memory_high_watermark.absolute = {{ int64 $alarms.watermark }}
{{- end }}
disk_free_limit.absolute = {{ int64 $alarms.diskFree }}
collect_statistics_interval = 1000
management.sample_retention_policies.basic.minute = 1
management.sample_retention_policies.basic.hour = 60
management.sample_retention_policies.global.minute = 5
management.sample_retention_policies.global.hour = 60
management.sample_retention_policies.global.day = 1200
management.sample_retention_policies.detailed.10 = 5
{{ end }}

{{/* definitions.json as definitionsJson(): the vhost and every queue as a durable quorum queue. */}}
{{- define "queue.definitions" -}}
{{- $queues := list -}}
{{- range (include "queue.spec" . | fromYaml).queues -}}
{{- $queues = append $queues (printf "    {\n      \"name\": \"%s\",\n      \"vhost\": \"/\",\n      \"durable\": true,\n      \"auto_delete\": false,\n      \"arguments\": {\n        \"x-queue-type\": \"quorum\"\n      }\n    }" .name) -}}
{{- end -}}
{
  "vhosts": [
    {
      "name": "/"
    }
  ],
  "queues": [
{{ join ",\n" $queues }}
  ]
}
{{ end }}

{{/*
app-permissions.json as appPermissionsJson(): the app's login may declare, read and publish to its
own queues (names anchored, dots escaped) and publish through the default exchange, nothing else.
*/}}
{{- define "queue.appPermissions" -}}
{{- $names := list -}}
{{- range (include "queue.spec" . | fromYaml).queues -}}
{{- $names = append $names (replace "." "\\\\." .name) -}}
{{- end -}}
{{- $own := ternary (printf "^(%s)$" (join "|" $names)) "^$" (gt (len $names) 0) -}}
{{- $write := printf "^(%s)$" (join "|" (append $names "amq\\\\.default")) -}}
{"configure":"{{ $own }}","write":"{{ $write }}","read":"{{ $own }}"}
{{ end }}

{{/*
Every file of the ConfigMap, by name (brokerConfigFiles): what each node's /config holds. With TLS
also the Erlang distribution's TLS options (interNodeTlsConfig), which the start script and the
CLI run in the pod (RABBITMQ_CTL_ERL_ARGS) load when the file is there.
*/}}
{{- define "queue.configFiles" -}}
{{- $files := dict
  "rabbitmq.conf" (include "queue.rabbitmqConf" .)
  "advanced.config" (.Files.Get "files/advanced.config")
  "definitions.json" (include "queue.definitions" .)
  "app-permissions.json" (include "queue.appPermissions" .)
  "enabled_plugins" (.Files.Get (ternary "files/enabled_plugins.prometheus" "files/enabled_plugins" (eq .Values.monitoring.enabled true)))
  "start.sh" (.Files.Get "files/start.sh") -}}
{{- if include "queue.tls" . -}}
{{- $_ := set $files "inter-node-tls.config" (.Files.Get "files/inter-node-tls.config") -}}
{{- end -}}
{{- toJson $files -}}
{{- end }}

{{/*
The rule on changes the schema cannot say (the storage's CEL transition rule), checked against the
live StatefulSet; `helm template` sees none and checks nothing.
*/}}
{{- define "queue.checkUnchangeable" -}}
{{- $live := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "queue.name" .) -}}
{{- include "scalableapp-lib.checkStorageSize" (dict "size" .Values.storage.size "live" $live) -}}
{{- if $live -}}
{{- if lt (int .Values.replicas) (int $live.spec.replicas) -}}
{{- fail (printf "replicas: replicas may grow but not shrink: the quorum queues keep members on the nodes that would go (shrink their membership first: rabbitmq-queues shrink, then scale down by hand) (%d, asked for %d)" (int $live.spec.replicas) (int .Values.replicas)) -}}
{{- end -}}
{{- $class := (first $live.spec.volumeClaimTemplates).spec.storageClassName | default "" -}}
{{- if ne $class (.Values.storage.storageClassName | default "") -}}
{{- fail (printf "storage.storageClassName: storageClassName is immutable: existing volumes cannot move to another storage class (%q, asked for %q)" $class (.Values.storage.storageClassName | default "")) -}}
{{- end -}}
{{- end -}}
{{- end }}
