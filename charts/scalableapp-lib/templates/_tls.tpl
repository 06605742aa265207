{{/*
TLS of the tiers that serve it (database, shards, cache, queue), as operator/tiers/tls.ts builds it:
the app's CA in `<release>-ca` (type kubernetes.io/tls: tls.crt and tls.key, mounted by no pod) and
its certificate alone in the ConfigMap `<release>-ca-cert` (ca.crt, which the app's pods mount and
the URLs name as sslrootcert, or CACHE_CA_FILE, QUEUE_CA_FILE); per server (a Postgres cluster, the
cache, the broker) a certificate in `<name>-tls` (tls.crt, tls.key, ca.crt: cert-manager's layout)
for every name a client may use.

Where the operator issues and renews (operator/tls/certificates.ts), a chart takes what it is given,
else keeps what the release's Secrets hold (lookup), else generates with Helm's genCAWithKey and
genSignedCertWithKey (ECDSA P-256, as the operator's). A chart never renews by itself: see
docs/helm.md, "TLS".
*/}}

{{- define "scalableapp-lib.tls.caSecretName" -}}{{ .Release.Name }}-ca{{- end }}
{{- define "scalableapp-lib.tls.caConfigMapName" -}}{{ .Release.Name }}-ca-cert{{- end }}

{{/* Where the app's pods find the CA certificate: the URLs' sslrootcert (CA_FILE in tls.ts). */}}
{{- define "scalableapp-lib.tls.caFile" -}}/etc/scalableapp/ca/ca.crt{{- end }}

{{/* The CA lives as long as the operator's (CA_VALIDITY_DAYS): replacing it re-trusts every client. */}}
{{- define "scalableapp-lib.tls.caDays" -}}3650{{- end }}

{{/*
A chart-made server certificate lives a year: nothing renews it without the operator (whose live 90
days and are renewed at 60), so it must outlast the upgrades that reissue it (tls.reissue).
*/}}
{{- define "scalableapp-lib.tls.serverDays" -}}365{{- end }}

{{/*
The app's CA as JSON {cert, key}: the given one (`given`: the values' tls.ca), else the release's
`<release>-ca` (lookup: upgrades keep it, so no client's copy goes stale), else a new one. A given
certificate without its key (a CA outside the cluster, with tls.existingSecret) is returned as it
is: nothing can be signed with it here. Call it once per render and hand the result on: each call
without a kept or given CA makes another.
*/}}
{{- define "scalableapp-lib.tls.ca" -}}
{{- $given := .given | default dict -}}
{{- if $given.cert -}}
{{- toJson (dict "cert" $given.cert "key" ($given.key | default "")) -}}
{{- else -}}
{{- $live := (lookup "v1" "Secret" .context.Release.Namespace (include "scalableapp-lib.tls.caSecretName" .context)).data | default dict -}}
{{- if and (index $live "tls.crt") (index $live "tls.key") -}}
{{- toJson (dict "cert" (index $live "tls.crt" | b64dec) "key" (index $live "tls.key" | b64dec)) -}}
{{- else -}}
{{- $key := genPrivateKey "ecdsa" -}}
{{- $ca := genCAWithKey (printf "%s/%s ScalableApp CA" .context.Release.Namespace .context.Release.Name) (include "scalableapp-lib.tls.caDays" . | int) $key -}}
{{- toJson (dict "cert" $ca.Cert "key" $ca.Key) -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
The CA's Secret (only with its key) and its certificate's ConfigMap, as caObjects(): component tls.
Takes context, ca ({cert, key}).
*/}}
{{- define "scalableapp-lib.tls.caObjects" -}}
{{- $meta := dict "context" .context "component" "tls" }}
{{- if .ca.key }}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata:
  {{- include "scalableapp-lib.metadata" (merge (dict "name" (include "scalableapp-lib.tls.caSecretName" .context)) $meta) | nindent 2 }}
data:
  tls.crt: {{ .ca.cert | b64enc }}
  tls.key: {{ .ca.key | b64enc }}
{{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  {{- include "scalableapp-lib.metadata" (merge (dict "name" (include "scalableapp-lib.tls.caConfigMapName" .context)) $meta) | nindent 2 }}
data:
  ca.crt: {{ .ca.cert | toJson }}
{{- end }}

{{/*
Every name a client may reach a server's pods by, as serviceDnsNames() in tls.ts: each short and
qualified form of its Services, and each pod of its headless Service through a wildcard (standbys
and replicas reach their primary by `<pod>.<headless>.<ns>.svc`), then the server dict's `exact`
names (the brokers': Erlang's distribution matches no wildcard, mqServerNames()). A JSON list. The
server dict may name `services` and `headless`; by default a Postgres cluster's (pgServerNames():
the read-write and read-only Services and `<name>-headless`).
*/}}
{{- define "scalableapp-lib.tls.serverNames" -}}
{{- $ns := .context.Release.Namespace -}}
{{- $names := list -}}
{{- range $svc := .services | default (list (printf "%s-rw" .name) (printf "%s-ro" .name)) -}}
{{- $names = concat $names (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) -}}
{{- end -}}
{{- $headless := .headless | default (include "scalableapp-lib.postgres.headless" .) -}}
{{- toJson (concat $names (list (printf "*.%s.%s.svc" $headless $ns) (printf "*.%s.%s.svc.cluster.local" $headless $ns)) (.exact | default list)) -}}
{{- end }}

{{/*
Whether a PEM certificate names every one of `names` ("true" or empty), as the operator reissues a
kept certificate whose names differ (serverCertProblem): Helm has no X.509 parser, but a DER
certificate holds each DNS name of its subjectAltName verbatim (an IA5String), so each name is
looked for in the first certificate's DER bytes. Takes cert (PEM), names (a list).
A substring, not the length-prefixed SAN entry (templates cannot build the raw tag and length
bytes), so a name inside a longer one counts as present. That cannot keep a wrong certificate: only
a certificate this chart issued is checked (a `given` one is used as it is), and the only names
that appear later than their release's first certificate are the brokers' exact names after a
scale-up (`<pod>.<headless>.<ns>.svc`), which no earlier name contains: the others are each
Service's forms, inside one another but issued together, and wildcards.
*/}}
{{- define "scalableapp-lib.tls.namesAll" -}}
{{- $block := regexFind "-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----" .cert -}}
{{- $der := regexReplaceAll "-----[A-Z ]+-----" $block "" | nospace | b64dec -}}
{{- $missing := list -}}
{{- range .names }}{{ if not (contains . $der) }}{{ $missing = append $missing . }}{{ end }}{{ end -}}
{{- if and $der (not $missing) }}true{{ end -}}
{{- end }}

{{/*
One server's certificate Secret, `<name>-tls`, as serverTlsSecret(). The pair is the given one
(`given`: {cert, key}), else the release's Secret's while the same CA issued it (its ca.crt is the
CA's: a new CA reissues every server certificate, as the operator does) for every name of
serverNames (a broker added by a scale-up needs its own) unless `reissue`, else a new one signed by
the CA for serverNames. Takes the server dict (a Postgres cluster's, or the cache's or the queue's:
context, component, name, extraLabels, and services, headless and exact where not a cluster's) plus
ca ({cert, key}), given, reissue.
*/}}
{{- define "scalableapp-lib.tls.serverSecret" -}}
{{- $name := printf "%s-tls" .name -}}
{{- $given := .given | default dict -}}
{{- $names := include "scalableapp-lib.tls.serverNames" . | fromJsonArray -}}
{{- $pair := dict -}}
{{- if and $given.cert $given.key -}}
{{- $pair = dict "cert" $given.cert "key" $given.key -}}
{{- else -}}
{{- $live := (lookup "v1" "Secret" .context.Release.Namespace $name).data | default dict -}}
{{- $liveCert := index $live "tls.crt" | default "" | b64dec -}}
{{- if and (not .reissue) $liveCert (index $live "tls.key") (eq (index $live "ca.crt" | default "" | b64dec) .ca.cert) (include "scalableapp-lib.tls.namesAll" (dict "cert" $liveCert "names" $names)) -}}
{{- $pair = dict "cert" $liveCert "key" (index $live "tls.key" | b64dec) -}}
{{- else -}}
{{- if not .ca.key -}}
{{- fail (printf "%s: a server certificate needs the CA's key (tls.ca.key) to be signed here, or tls.certificate(s), or tls.existingSecret" $name) -}}
{{- end -}}
{{- $ca := buildCustomCert (.ca.cert | b64enc) (.ca.key | b64enc) -}}
{{- $cert := genSignedCertWithKey (first $names) nil $names (include "scalableapp-lib.tls.serverDays" . | int) $ca (genPrivateKey "ecdsa") -}}
{{- $pair = dict "cert" $cert.Cert "key" $cert.Key -}}
{{- end -}}
{{- end -}}
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata:
  {{- include "scalableapp-lib.member.metadata" (merge (dict "name" $name) .) | nindent 2 }}
data:
  tls.crt: {{ $pair.cert | b64enc }}
  tls.key: {{ $pair.key | b64enc }}
  ca.crt: {{ .ca.cert | b64enc }}
{{- end }}

{{/*
The CA certificate for an existing server Secret (tls.existingSecret, e.g. cert-manager's, whose
ca.crt is the issuer's): the values' tls.ca.cert, else that Secret's ca.crt (lookup, at install and
upgrade). Fails when neither is there: the app's pods could not verify the servers.
*/}}
{{- define "scalableapp-lib.tls.existingCa" -}}
{{- $cert := dig "ca" "cert" "" .tls -}}
{{- if not $cert -}}
{{- $live := (lookup "v1" "Secret" .context.Release.Namespace .tls.existingSecret).data | default dict -}}
{{- $cert = index $live "ca.crt" | default "" | b64dec -}}
{{- end -}}
{{- if not $cert -}}
{{- fail (printf "tls.existingSecret: Secret %q with key \"ca.crt\" is not readable in %s and tls.ca.cert is not given: the app's pods need the CA to verify the servers (helm template cannot read the cluster)" .tls.existingSecret .context.Release.Namespace) -}}
{{- end -}}
{{- toJson (dict "cert" $cert "key" "") -}}
{{- end }}

{{/*
Every TLS object of a chart that owns servers (database: one cluster, shards: one per shard, cache:
one StatefulSet): the CA's objects unless tls.appWide is false (an umbrella renders them once for
all), and a server Secret per server unless tls.existingSecret names one. Takes context, tls (the
values' tls), and clusters (the server dicts, each with `given`: its tls.certificate).
*/}}
{{- define "scalableapp-lib.tls.objects" -}}
{{- $tls := .tls -}}
{{- if $tls.existingSecret -}}
{{- $ca := include "scalableapp-lib.tls.existingCa" (dict "context" .context "tls" $tls) | fromJson -}}
{{- if $tls.appWide }}{{ include "scalableapp-lib.tls.caObjects" (dict "context" .context "ca" $ca) }}{{ end -}}
{{- else -}}
{{- $ca := include "scalableapp-lib.tls.ca" (dict "context" .context "given" $tls.ca) | fromJson -}}
{{- if $tls.appWide }}{{ include "scalableapp-lib.tls.caObjects" (dict "context" .context "ca" $ca) }}{{ end -}}
{{- range .clusters }}
---
{{ include "scalableapp-lib.tls.serverSecret" (merge (dict "ca" $ca "reissue" $tls.reissue) .) }}
{{- end -}}
{{- end -}}
{{- end }}
