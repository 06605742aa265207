{{/*
The values as the operator's builder receives spec.web: with zod's defaults applied where Helm's
merge of values.yaml cannot apply them (objects the user may omit whole; `resources` merged with its
default quantity by quantity), and the spec's CEL rules
checked, each failing with the field and the rule's message. Use: $web := include "web.spec" . | fromYaml
*/}}
{{- define "web.spec" -}}
{{- $web := deepCopy .Values -}}
{{- $_ := set $web "resources" (include "scalableapp-lib.mergedResources" (dict "given" $web.resources "defaults" (dict "requests" (dict "cpu" "100m" "memory" "128Mi") "limits" (dict "memory" "256Mi")) "floor" (dict "min" "16Mi" "server" "a container") "field" "resources") | fromYaml) -}}
{{- with $web.autoscaling -}}
{{- if not (hasKey . "minReplicas") }}{{ $_ := set . "minReplicas" 2 }}{{ end -}}
{{- if not (hasKey . "targetCPUUtilizationPercentage") }}{{ $_ := set . "targetCPUUtilizationPercentage" 70 }}{{ end -}}
{{- if gt (int .minReplicas) (int .maxReplicas) -}}
{{- fail "autoscaling.minReplicas: minReplicas must be <= maxReplicas" -}}
{{- end -}}
{{- end -}}
{{- if $web.autoscaling -}}
{{- $cpu := $web.resources.requests.cpu -}}
{{- if or (kindIs "invalid" $cpu) (lt (include "scalableapp-lib.scaled" (dict "quantity" $cpu "percent" 100000 "field" "resources.requests.cpu") | atoi) 1) -}}
{{- fail "resources.requests.cpu: autoscaling aims at a share of the CPU request: requests.cpu must be greater than zero" -}}
{{- end -}}
{{- end -}}
{{- $e := $web.expose -}}
{{- if and $e.host (regexMatch "^[0-9.]+$" (toString $e.host)) }}{{ fail "expose.host: host must be a DNS name, not an IP address (Ingress and HTTPRoute refuse one)" }}{{ end -}}
{{- $routed := has $e.type (list "Ingress" "Gateway") -}}
{{- if and $routed (not $e.host) }}{{ fail "expose.host: host is required when type is Ingress or Gateway" }}{{ end -}}
{{- if and (ne $e.type "Gateway") $e.gateway }}{{ fail "expose.gateway: gateway may only be set when type is Gateway" }}{{ end -}}
{{- if and (eq $e.type "Gateway") (not $e.gateway) }}{{ fail "expose.gateway: gateway is required when type is Gateway" }}{{ end -}}
{{- if and (ne $e.type "Ingress") $e.tlsSecretName }}{{ fail "expose.tlsSecretName: tlsSecretName may only be set when type is Ingress" }}{{ end -}}
{{- if and (ne $e.type "Ingress") $e.ingressClassName }}{{ fail "expose.ingressClassName: ingressClassName may only be set when type is Ingress" }}{{ end -}}
{{- if and (not $routed) $e.host }}{{ fail "expose.host: host may only be set when type is Ingress or Gateway" }}{{ end -}}
{{- range $i, $env := $web.env -}}
{{- if eq (hasKey $env "value") (hasKey $env "secretKeyRef") -}}
{{- fail (printf "env[%d]: set exactly one of value or secretKeyRef" $i) -}}
{{- end -}}
{{- if has $env.name (include "scalableapp-lib.injectedEnv" . | splitList " ") -}}
{{- fail (printf "env[%d].name: name is one the operator sets (the connection Secret or QUEUE_NAME): an env of that name would hide it" $i) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $web.sessions "cache") (not $web.connection.secretName) (not (hasKey $web.connection.entries "SESSION_STORE_URL")) -}}
{{- fail "sessions: web.sessions is cache but there is no cache tier: set connection.entries.SESSION_STORE_URL (or connection.secretName) or set sessions to none" -}}
{{- end -}}
{{- toYaml $web -}}
{{- end }}

{{- define "web.name" -}}{{ printf "%s-web" .Release.Name }}{{- end }}

{{/* Labels dict for the lib templates. */}}
{{- define "web.labels" -}}
{{- include "scalableapp-lib.labels" (dict "context" . "component" "web") -}}
{{- end }}

{{- define "web.metadata" -}}
{{- include "scalableapp-lib.metadata" (dict "context" . "component" "web" "name" (include "web.name" .)) -}}
{{- end }}

{{/* WEB_URL, as webEndpoint(): the public host when there is one, else the Service. */}}
{{- define "web.url" -}}
{{- $e := .Values.expose -}}
{{- if $e.host -}}
{{- printf "%s://%s" (ternary "https" "http" (and (eq $e.type "Ingress") (not (empty $e.tlsSecretName)))) $e.host -}}
{{- else -}}
{{- printf "http://%s.%s.svc:80" (include "web.name" .) .Release.Namespace -}}
{{- end -}}
{{- end }}

{{/* The connection Secret's name: the given one, else the one this chart creates. */}}
{{- define "web.connectionName" -}}
{{- .Values.connection.secretName | default (printf "%s-connection" .Release.Name) -}}
{{- end }}

{{/* The data of the Secret the chart creates (base64 values), when it creates one. */}}
{{- define "web.connectionData" -}}
{{- $data := dict "SCALABLEAPP_NAME" (.Release.Name | b64enc) "WEB_URL" (include "web.url" . | b64enc) -}}
{{- range $k, $v := .Values.connection.entries }}{{ $_ := set $data $k ($v | toString | b64enc) }}{{ end -}}
{{- toYaml $data -}}
{{- end }}

{{/*
The connection hash on the pod template, as connectionHash(): of the Secret the chart creates; of
the given Secret, from `connection.hash` or else read from the cluster (at install and upgrade;
`helm template` cannot see it and leaves the annotation out); with the CA certificate the pods mount.
*/}}
{{- define "web.connectionHash" -}}
{{- if not .Values.connection.secretName -}}
{{- include "scalableapp-lib.connection.digest" (dict "context" . "data" (include "web.connectionData" . | fromYaml)) -}}
{{- else -}}
{{- include "scalableapp-lib.connection.hash" (dict "context" .) -}}
{{- end -}}
{{- end }}
