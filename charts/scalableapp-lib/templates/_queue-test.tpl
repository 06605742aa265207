{{/*
What the queue's and the consumers' `helm test` pods share: they ask the broker's management API
(port 15672) with the monitoring login, as KEDA and the operator do, with hand-written HTTP/1.0
requests, so the test image needs no HTTP client. With TLS (the queue's tls.enabled) the requests go
through openssl s_client, which checks the broker's certificate against the app's CA (mounted at
the CA file's path: scalableapp-lib.connection.caFiles) and the client Service's name, as the app's clients do; without it
through nc (busybox's or netcat-openbsd's).
*/}}

{{/*
The shell that defines `mgmt_get PATH` (`auth` must hold the Authorization header line): one GET of
PATH, retried until an HTTP answer comes (up to ~2 minutes: a new pod's first connections may be
dropped while NetworkPolicies catch up with its address); prints the response without CRs, fails
unless its status is 200 (a queue that does not exist is a 404). Takes host (the client Service's
address), tls (whether the broker serves TLS), and context.
*/}}
{{- define "scalableapp-lib.queueTest.managementGet" -}}
{{- $sender := ternary "openssl s_client (the broker serves TLS)" "nc" (not (empty .tls)) -}}
# The requests go through {{ $sender }}.
{{- range ternary (list "openssl" "timeout") (list "nc") (not (empty .tls)) }}
command -v {{ . }} >/dev/null || { echo "test.image has no {{ . }}: this test sends its HTTP requests with {{ $sender }}" >&2; exit 1; }
{{- end }}
# The header is built here, from the Secret's values: the login is in no spec or argument.
auth="Authorization: Basic $(printf '%s:%s' "$QUEUE_USERNAME" "$QUEUE_PASSWORD" | base64 | tr -d '\n')"
mgmt_get() {
  tries=20
  until response=$(printf 'GET %s HTTP/1.0\r\nHost: {{ .host }}:15672\r\n%s\r\n\r\n' "$1" "$auth" |
    {{- if .tls }}
    timeout 10 openssl s_client -quiet -verify_quiet -verify_return_error -CAfile {{ include "scalableapp-lib.tls.caFile" .context }} \
      -connect {{ .host }}:15672 -servername {{ .host }} -verify_hostname {{ .host }} 2>&1 | tr -d '\r') &&
    {{- else }}
    nc -w 5 {{ .host }} 15672 | tr -d '\r') &&
    {{- end }}
    status=$(printf '%s\n' "$response" | sed -n '/^HTTP\/1\.[01] /{p;q;}') && [ -n "$status" ]; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || { echo "GET $1: no answer: $(printf '%s\n' "$response" | sed -n 1,5p)" >&2; return 1; }
    sleep 2
  done
  case $status in
    'HTTP/1.'[01]' 200'*) printf '%s\n' "$response" ;;
    *) echo "GET $1: $status" >&2; return 1 ;;
  esac
}
{{- end }}
