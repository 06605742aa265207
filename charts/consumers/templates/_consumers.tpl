{{/*
The consumers as operator/tiers/consumers.ts builds them, and what the chart stands in for: the
connection Secret's queue entries (operator/tiers/queue.ts queueEntries) and, optionally, KEDA in
place of the operator's queue-depth autoscaler. charts/test/consumers.parity.test.ts proves the
rendered objects are the operator's.
*/}}

{{/*
spec.consumers with zod's defaults applied where Helm's merge of values.yaml cannot apply them
(inside list items), and the spec's rules that JSON Schema cannot say, each failing with the field
and the rule's message. Use: $consumers := (include "consumers.list" . | fromYaml).consumers
*/}}
{{- define "consumers.list" -}}
{{- $out := list -}}
{{- $names := list -}}
{{- range $i, $c := deepCopy .Values.consumers -}}
{{- $at := printf "consumers[%d]" $i -}}
{{- if has $c.name $names }}{{ fail (printf "%s.name: consumer %q is listed twice" $at $c.name) }}{{ end -}}
{{- $names = append $names $c.name -}}
{{- if has $c.name (list "web" "edge") -}}
{{- fail (printf "%s.name: name must not be web or edge: its Deployment <app>-<name> would be the web or edge cache tier" $at) -}}
{{- end -}}
{{- $_ := set $c "resources" (include "scalableapp-lib.mergedResources" (dict "given" $c.resources "defaults" (dict "requests" (dict "cpu" "100m" "memory" "128Mi") "limits" (dict "memory" "256Mi")) "floor" (dict "min" "16Mi" "server" "a container") "field" (printf "%s.resources" $at)) | fromYaml) -}}
{{- if not (hasKey $c "replicas") }}{{ $_ := set $c "replicas" 1 }}{{ end -}}
{{- $envNames := list -}}
{{- range $j, $e := $c.env | default list -}}
{{- if eq (hasKey $e "value") (hasKey $e "secretKeyRef") -}}
{{- fail (printf "%s.env[%d]: set exactly one of value or secretKeyRef" $at $j) -}}
{{- end -}}
{{- if has $e.name (include "scalableapp-lib.injectedEnv" . | splitList " ") -}}
{{- fail (printf "%s.env[%d].name: name is one the operator sets (the connection Secret or QUEUE_NAME): an env of that name would hide it" $at $j) -}}
{{- end -}}
{{- if has $e.name $envNames }}{{ fail (printf "%s.env[%d].name: %q is listed twice" $at $j $e.name) }}{{ end -}}
{{- $envNames = append $envNames $e.name -}}
{{- end -}}
{{- with $c.autoscaling -}}
{{- range $k, $v := dict "minReplicas" 0 "messagesPerReplica" 100 "cooldownSeconds" 300 "pollIntervalSeconds" 2 "scaleDownStabilizationSeconds" 60 -}}
{{- if not (hasKey $c.autoscaling $k) }}{{ $_ := set $c.autoscaling $k $v }}{{ end -}}
{{- end -}}
{{- if gt (int .minReplicas) (int .maxReplicas) -}}
{{- fail (printf "%s.autoscaling.minReplicas: minReplicas must be <= maxReplicas" $at) -}}
{{- end -}}
{{- end -}}
{{- with $c.healthCheck -}}
{{- range $k, $v := dict "path" "/healthz" "periodSeconds" 10 "failureThreshold" 3 -}}
{{- if not (hasKey $c.healthCheck $k) }}{{ $_ := set $c.healthCheck $k $v }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml (dict "consumers" $out) -}}
{{- end }}

{{- define "consumers.queueRelease" -}}{{ .Values.queue.release | default .Release.Name }}{{- end }}
{{- define "consumers.queueCredentials" -}}
{{- .Values.queue.credentialsSecret | default (printf "%s-mq-credentials" (include "consumers.queueRelease" .)) -}}
{{- end }}
{{/* The queue's client Service, as mqHost(). */}}
{{- define "consumers.queueHost" -}}
{{- printf "%s-mq.%s.svc" (include "consumers.queueRelease" .) .Release.Namespace -}}
{{- end }}

{{/*
Whether the queue serves TLS ("true" or empty): queue.tls, on unless turned off, as the queue
chart's tls.enabled (an umbrella that sets `queue` without it means the default).
*/}}
{{- define "consumers.queueTls" -}}
{{- if dig "tls" true (.Values.queue | default dict) }}true{{ end -}}
{{- end }}

{{/*
The ConfigMap of the app's CA the pods mount: ca.configMapName, else, when the queue serves TLS, the
queue release's `<queue.release>-ca-cert` (QUEUE_CA_FILE needs it); nothing otherwise.
*/}}
{{- define "consumers.caConfigMap" -}}
{{- .Values.ca.configMapName | default (ternary (printf "%s-ca-cert" (include "consumers.queueRelease" .)) "" (eq (include "consumers.queueTls" .) "true")) -}}
{{- end }}

{{/* A URI component as JavaScript's encodeURIComponent writes it (UTF-8, uppercase hex). */}}
{{- define "consumers.uriComponent" -}}
{{- range splitList "" . -}}
{{- if regexMatch `^[A-Za-z0-9_.!~*'()-]$` . }}{{ . }}{{ else }}{{ regexReplaceAll "(..)" (printf "%X" .) "%${1}" }}{{ end -}}
{{- end -}}
{{- end }}

{{/*
What the connection Secret the chart creates holds, as plain strings: what the operator's holds for
an app of consumers and a queue (SCALABLEAPP_NAME, QUEUE_URL and, with TLS, QUEUE_CA_FILE: see
queueEntries), then connection.entries. QUEUE_URL carries the broker's login: unless an entry gives
it, it is built from the queue's credentials Secret, read at install and upgrade (lookup). Without
it the chart refuses to render (`helm template` cannot read the cluster: give the entry).
*/}}
{{- define "consumers.connectionData" -}}
{{- $data := dict "SCALABLEAPP_NAME" .Release.Name -}}
{{- if not (hasKey .Values.connection.entries "QUEUE_URL") -}}
{{- $secret := include "consumers.queueCredentials" . -}}
{{- $live := (lookup "v1" "Secret" .Release.Namespace $secret).data | default dict -}}
{{- if not (and $live.username $live.password) -}}
{{- fail (printf "connection.entries.QUEUE_URL: the consumers need the queue's URL: no Secret %s with username and password in %s to build it from (install the queue chart first and set queue.release, or give connection.entries.QUEUE_URL, or connection.secretName)" $secret .Release.Namespace) -}}
{{- end -}}
{{- $login := printf "%s:%s" (include "consumers.uriComponent" (b64dec $live.username)) (include "consumers.uriComponent" (b64dec $live.password)) -}}
{{- $tls := include "consumers.queueTls" . -}}
{{- $_ := set $data "QUEUE_URL" (printf "%s://%s@%s:5672/%%2F" (ternary "amqps" "amqp" (eq $tls "true")) $login (include "consumers.queueHost" .)) -}}
{{- if $tls -}}
{{- /* AMQP URIs have no parameter for the CA: the clients read it from this file (the mounted ConfigMap). */ -}}
{{- $_ := set $data "QUEUE_CA_FILE" (include "scalableapp-lib.tls.caFile" .) -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := .Values.connection.entries }}{{ $_ := set $data $k ($v | toString) }}{{ end -}}
{{- toYaml $data -}}
{{- end }}

{{/* Whether KEDA scales the autoscaled consumers: asked for, and its API served. */}}
{{- define "consumers.keda" -}}
{{- if and .Values.keda.enabled (.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject") (.Capabilities.APIVersions.Has "keda.sh/v1alpha1/TriggerAuthentication") -}}
true
{{- end -}}
{{- end }}

{{/* The member dict of one consumer for the lib's member templates (its own selector label). */}}
{{- define "consumers.member" -}}
{{- toJson (dict "component" "consumer" "name" (printf "%s-%s" .context.Release.Name .consumer.name) "extraLabels" (dict "scalableapp.io/consumer" .consumer.name)) -}}
{{- end }}
