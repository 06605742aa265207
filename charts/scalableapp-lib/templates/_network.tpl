{{/*
NetworkPolicies, as operator/tiers/network-policies.ts: default deny for every pod of the app, then
explicit allows. The app's pods are those labelled part-of=<release> and managed-by=Helm.
*/}}

{{/* The operator's namespace: the data tiers accept it, because the operator fails them over. */}}
{{- define "scalableapp-lib.operatorNamespace" -}}scalableapp-system{{- end }}

{{- define "scalableapp-lib.appPods" -}}
matchLabels:
  app.kubernetes.io/part-of: {{ .context.Release.Name | quote }}
  app.kubernetes.io/managed-by: {{ .context.Release.Service | quote }}
{{- end }}

{{/*
The two app-wide policies every app gets once: default deny (ingress and egress) and DNS egress to
kube-system. Rendered only when .Values.networkPolicies.appWide is true (the default): several tier
charts sharing one release name (an umbrella) must leave them to exactly one of them.
Takes context.
*/}}
{{- define "scalableapp-lib.appWidePolicies" -}}
{{- if dig "appWide" true (.context.Values.networkPolicies | default dict) }}
{{- $meta := dict "context" .context "component" "network" }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  {{- include "scalableapp-lib.metadata" (merge (dict "name" (include "scalableapp-lib.childName" (dict "context" .context "suffix" "default-deny"))) $meta) | nindent 2 }}
spec:
  podSelector:
    {{- include "scalableapp-lib.appPods" . | nindent 4 }}
  policyTypes:
    - Ingress
    - Egress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  {{- include "scalableapp-lib.metadata" (merge (dict "name" (include "scalableapp-lib.childName" (dict "context" .context "suffix" "allow-dns"))) $meta) | nindent 2 }}
spec:
  podSelector:
    {{- include "scalableapp-lib.appPods" . | nindent 4 }}
  policyTypes:
    - Egress
  egress:
    - to:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: kube-system
      ports:
        - protocol: UDP
          port: 53
        - protocol: TCP
          port: 53
{{- end }}
{{- end }}

{{/* The operator's pods, by their label, in the operator's namespace: a NetworkPolicy peer. */}}
{{- define "scalableapp-lib.operatorPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ include "scalableapp-lib.operatorNamespace" . }}
  podSelector:
    matchLabels:
      scalableapp.io/operator: "true"
{{- end }}

{{/*
A data tier's two policies (dataTierPolicies in the operator): ingress to its pods from the app's
web tier and consumers and from the operator on the client ports, from the operator alone on the
operator ports, from its own pods on the client and peer-only ports, and from allowedClients on the
client ports; egress from every pod of the app to it on the client and peer ports.
Takes context, component, tier (the name part: allow-<tier>-ingress), clientPorts, operatorPorts,
peerPorts (lists) and allowedClients (the tier's values); optionally monitoring (the chart's
monitoring values: with enabled, its scrapers are admitted on metricsPort).
*/}}
{{/*
The CEL rule of a list of pod peers (allowedClients, monitoring.scrapers): every matchLabels key a
label key (JSON Schema checks label values, not a map's keys). Takes peers and field.
*/}}
{{- define "scalableapp-lib.checkPeerLabelKeys" -}}
{{- $field := .field }}
{{- range $i, $c := .peers }}
{{- range $sel := list "podSelector" "namespaceSelector" }}
{{- with get $c $sel }}
{{- range $k, $_ := .matchLabels }}
{{- if or (gt (len $k) 317) (not (regexMatch "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$" $k)) }}
{{- fail (printf "%s[%d].%s.matchLabels: every key must be a label key (an optional DNS prefix and /, then a name of at most 63 characters)" $field $i $sel) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "scalableapp-lib.dataTierPolicies" -}}
{{- include "scalableapp-lib.checkPeerLabelKeys" (dict "peers" .allowedClients "field" "allowedClients") }}
{{- $monitored := and .monitoring (dig "enabled" false (.monitoring | default dict)) }}
{{- if $monitored }}
{{- include "scalableapp-lib.checkPeerLabelKeys" (dict "peers" .monitoring.scrapers "field" "monitoring.scrapers") }}
{{- end }}
{{- $peerPorts := .peerPorts | default list }}
{{- $allPorts := concat .clientPorts $peerPorts }}
{{- $release := .context.Release.Name }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  {{- include "scalableapp-lib.metadata" (merge (dict "name" (printf "%s-allow-%s-ingress" $release .tier)) .) | nindent 2 }}
spec:
  podSelector:
    matchLabels:
      {{- include "scalableapp-lib.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
  ingress:
    - from:
        {{- /* movers: the app's other pods of these components, e.g. the resharding Job's. */}}
        {{- range $c := concat (list "web" "consumer") (.movers | default list) }}
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ $release | quote }}
              app.kubernetes.io/component: {{ $c }}
        {{- end }}
        {{- if not $peerPorts }}
        - podSelector:
            matchLabels:
              {{- include "scalableapp-lib.selectorLabels" . | nindent 14 }}
        {{- end }}
        {{- include "scalableapp-lib.operatorPeer" . | nindent 8 }}
      ports:
        {{- range $p := .clientPorts }}
        - protocol: TCP
          port: {{ $p }}
        {{- end }}
    {{- /* operatorPorts: the operator alone (the queue's management API, where it reads depths). */}}
    {{- with .operatorPorts }}
    - from:
        {{- include "scalableapp-lib.operatorPeer" $ | nindent 8 }}
      ports:
        {{- range $p := . }}
        - protocol: TCP
          port: {{ $p }}
        {{- end }}
    {{- end }}
    {{- if $peerPorts }}
    - from:
        - podSelector:
            matchLabels:
              {{- include "scalableapp-lib.selectorLabels" . | nindent 14 }}
      ports:
        {{- range $p := $allPorts }}
        - protocol: TCP
          port: {{ $p }}
        {{- end }}
    {{- end }}
    {{- /* allowedClients: exactly the pods named, by label (in the namespaces named, if any). */}}
    {{- with .allowedClients }}
    - from:
        {{- range $c := . }}
        - podSelector:
            matchLabels:
              {{- toYaml $c.podSelector.matchLabels | nindent 14 }}
          {{- with $c.namespaceSelector }}
          namespaceSelector:
            matchLabels:
              {{- toYaml .matchLabels | nindent 14 }}
          {{- end }}
        {{- end }}
      ports:
        {{- range $p := $.clientPorts }}
        - protocol: TCP
          port: {{ $p }}
        {{- end }}
    {{- end }}
    {{- /* With monitoring (a tier chart's monitoring values): the scrapers, on metricsPort only. */}}
    {{- if $monitored }}
    {{- with .monitoring.scrapers }}
    - from:
        {{- range $c := . }}
        - podSelector:
            matchLabels:
              {{- toYaml $c.podSelector.matchLabels | nindent 14 }}
          {{- with $c.namespaceSelector }}
          namespaceSelector:
            matchLabels:
              {{- toYaml .matchLabels | nindent 14 }}
          {{- end }}
        {{- end }}
      ports:
        - protocol: TCP
          port: {{ $.metricsPort }}
    {{- end }}
    {{- end }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  {{- include "scalableapp-lib.metadata" (merge (dict "name" (printf "%s-allow-%s-egress" $release .tier)) .) | nindent 2 }}
spec:
  podSelector:
    {{- include "scalableapp-lib.appPods" . | nindent 4 }}
  policyTypes:
    - Egress
  egress:
    - to:
        - podSelector:
            matchLabels:
              {{- include "scalableapp-lib.selectorLabels" . | nindent 14 }}
      ports:
        {{- range $p := $allPorts }}
        - protocol: TCP
          port: {{ $p }}
        {{- end }}
{{- end }}
