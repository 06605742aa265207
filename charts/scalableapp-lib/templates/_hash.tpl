{{/*
The first 16 hex digits of the SHA-256 of a value's JSON: the same digest as contentHash() in
operator/tiers/content-hash.ts, whose goJson() writes JSON as Go's encoding/json (toJson) does.
A pod-template annotation holding it rolls the pods exactly when the operator's would.
*/}}
{{- define "scalableapp-lib.contentHash" -}}
{{- toJson . | sha256sum | trunc 16 -}}
{{- end }}
