{{/*
Quantities and resource requirements, as operator/tiers/resources.ts: the spec allows a quantity as
a number (`cpu: 2`), the Kubernetes API wants a string. Values files give numbers as float64, --set
as int64: printing through int64 keeps 268435456 from becoming 2.68435456e+08.
*/}}

{{/* One quantity as its string. */}}
{{- define "scalableapp-lib.quantity" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ int64 . }}{{ end -}}
{{- end }}

{{/*
`requests:` and `limits:` of a container, from the spec's `resources` (each only when given);
include at the indentation of the container's `resources:` value.
*/}}
{{- define "scalableapp-lib.resources" -}}
{{- $r := . | default dict -}}
{{- $out := dict -}}
{{- range $kind := list "requests" "limits" -}}
{{- if and (hasKey $r $kind) (kindIs "map" (index $r $kind)) -}}
{{- $list := dict -}}
{{- range $name, $q := index $r $kind -}}
{{- if not (kindIs "invalid" $q) }}{{ $_ := set $list $name (include "scalableapp-lib.quantity" $q) }}{{ end -}}
{{- end -}}
{{- $_ := set $out $kind $list -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}

{{/*
floor(quantity × percent / 100), computed exactly in integers (int64) as quantityFraction() does in
operator/tiers/resources.ts, negative for a negative quantity. Fails with the field's name when the
quantity is not one or the result exceeds int64. Takes a dict: quantity, percent, field.
*/}}
{{- define "scalableapp-lib.scaled" -}}
{{- $field := .field -}}
{{- $text := include "scalableapp-lib.quantity" .quantity | trim -}}
{{- $re := `^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$` -}}
{{- $int := regexReplaceAll $re $text "${2}" -}}
{{- $frac := regexReplaceAll $re $text "${3}" -}}
{{- if or (not (regexMatch $re $text)) (and (eq $int "") (eq $frac "")) -}}
{{- fail (printf "%s is not a quantity: %s" $field (toJson .quantity)) -}}
{{- end -}}
{{- $sign := regexReplaceAll $re $text "${1}" -}}
{{- $exp := regexReplaceAll $re $text "${4}" -}}
{{- $suffix := regexReplaceAll $re $text "${5}" -}}
{{- $decimal := dict "n" -9 "u" -6 "m" -3 "k" 3 "M" 6 "G" 9 "T" 12 "P" 15 "E" 18 -}}
{{- $binary := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 -}}
{{- $maxInt := atoi "9223372036854775807" -}}
{{- $tooLarge := printf "%s is too large" $field -}}
{{- $ten := int64 (ternary (atoi $exp) (get $decimal $suffix | default 0) (ne $exp "")) -}}
{{- $ten = sub $ten (len $frac) -}}
{{- $digits := regexReplaceAll "^0+" (printf "%s%s" $int $frac) "" | default "0" -}}
{{- if gt (len $digits) 18 }}{{ fail $tooLarge }}{{ end -}}
{{- $num := int64 (atoi $digits) -}}
{{- $den := int64 1 -}}
{{- $bin := int64 (get $binary $suffix | default 1) -}}
{{- if gt $num (div $maxInt $bin) }}{{ fail $tooLarge }}{{ end -}}
{{- $num = mul $num $bin -}}
{{- if ge $ten 0 -}}
{{- if and (gt $num 0) (gt $ten 18) }}{{ fail $tooLarge }}{{ end -}}
{{- $pow := int64 (atoi (printf "1%s" (repeat (int $ten) "0"))) -}}
{{- if gt $num (div $maxInt $pow) }}{{ fail $tooLarge }}{{ end -}}
{{- $num = mul $num $pow -}}
{{- else if le $ten -19 -}}
{{- $num = 0 -}}
{{- else -}}
{{- $den = int64 (atoi (printf "1%s" (repeat (int (sub 0 $ten)) "0"))) -}}
{{- end -}}
{{- $percent := int64 .percent -}}
{{- $scaled := int64 0 -}}
{{- if eq (mod $percent 100) 0 -}}
{{- /* A whole factor (e.g. 100000: milli-units) multiplies without the ×100 that could overflow. */ -}}
{{- $factor := div $percent 100 -}}
{{- if gt $num (div $maxInt $factor) }}{{ fail $tooLarge }}{{ end -}}
{{- $scaled = div (mul $num $factor) $den -}}
{{- else -}}
{{- if gt $num (div $maxInt $percent) }}{{ fail $tooLarge }}{{ end -}}
{{- $scaled = div (div (mul $num $percent) 100) $den -}}
{{- end -}}
{{- if eq $sign "-" }}{{ $scaled = sub 0 $scaled }}{{ end -}}
{{- $scaled -}}
{{- end }}

{{/*
floor(quantity × percent / 100) in bytes, as maxMemoryBytes() does in operator/server-config/cache.ts
(e.g. a cache's maxmemory: the memory limit minus its headroom). Fails with the field's name when the
quantity is missing, not a quantity, leaves less than one byte, or exceeds 2^53 − 1 (the operator's
limit). Takes a dict: quantity, percent, field (the value's path for messages), why (what the value
is for), headroom (the percentage named in the message).
*/}}
{{- define "scalableapp-lib.scaledBytes" -}}
{{- $field := .field -}}
{{- if or (kindIs "invalid" .quantity) (eq (toString .quantity) "") -}}
{{- fail (printf "%s is required: %s" $field .why) -}}
{{- end -}}
{{- $bytes := include "scalableapp-lib.scaled" (dict "quantity" .quantity "percent" .percent "field" $field) | atoi -}}
{{- if lt $bytes 1 -}}
{{- fail (printf "%s %s leaves no memory after %d%% headroom" $field (toJson .quantity) (int64 .headroom)) -}}
{{- end -}}
{{- if gt $bytes 9007199254740991 }}{{ fail (printf "%s is too large" $field) }}{{ end -}}
{{- $bytes -}}
{{- end }}

{{/*
A tier's `resources` merged with its defaults quantity by quantity, as the spec's schema does (a
user who sets only a limit keeps the default requests); a request above its limit fails naming the
field, as the CRD refuses it, and so does a memory limit out of the tier's bounds. Takes a dict:
given (the values' resources, may be absent), defaults, floor (min and server: the smallest memory
limit the server starts in), field (the path of `resources` for messages). Use: $r := include "scalableapp-lib.mergedResources"
(dict ...) | fromYaml
*/}}
{{- define "scalableapp-lib.mergedResources" -}}
{{- $given := .given | default dict -}}
{{- $out := dict -}}
{{- range $kind := list "requests" "limits" -}}
{{- /* Key by key, not sprig's merge: it would replace a given 0 with the default. */ -}}
{{- $list := deepCopy (get $.defaults $kind | default dict) -}}
{{- if kindIs "map" (get $given $kind) -}}
{{- range $name, $q := get $given $kind -}}
{{- if kindIs "invalid" $q }}{{ $_ := unset $list $name }}{{ else }}{{ $_ := set $list $name $q }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $_ := set $out $kind $list -}}
{{- end -}}
{{- range $name := list "cpu" "memory" -}}
{{- if and (hasKey $out.requests $name) (hasKey $out.limits $name) -}}
{{- $field := printf "%s.requests.%s" $.field $name -}}
{{- $req := include "scalableapp-lib.scaled" (dict "quantity" (get $out.requests $name) "percent" 100000 "field" $field) | atoi -}}
{{- $lim := include "scalableapp-lib.scaled" (dict "quantity" (get $out.limits $name) "percent" 100000 "field" (printf "%s.limits.%s" $.field $name)) | atoi -}}
{{- if gt $req $lim -}}
{{- fail (printf "%s: requests.%s must not exceed limits.%s (a limit given alone is compared with the default request)" $field $name $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with $out.limits.memory -}}
{{- $field := printf "%s.limits.memory" $.field -}}
{{- $bytes := include "scalableapp-lib.scaled" (dict "quantity" . "percent" 100 "field" $field) | atoi -}}
{{- $min := include "scalableapp-lib.scaled" (dict "quantity" $.floor.min "percent" 100 "field" $field) | atoi -}}
{{- if or (lt $bytes $min) (gt $bytes 1125899906842624) -}}
{{- fail (printf "%s: limits.memory must be between %s (%s does not start in less) and 1Pi" $field $.floor.min $.floor.server) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}

{{/*
The spec's rules on a volume's size (its CEL rules): between 1Mi and 1Pi, and, against the live
StatefulSet's claim template when there is one, never smaller than it was (Kubernetes refuses to
shrink a PVC, long after the release was accepted). Takes a dict: size, live (a lookup result, empty
under `helm template`).
*/}}
{{- define "scalableapp-lib.checkStorageSize" -}}
{{- $size := include "scalableapp-lib.scaled" (dict "quantity" .size "percent" 100000 "field" "storage.size") | atoi -}}
{{- if or (lt $size 1048576000) (gt $size 1125899906842624000) -}}
{{- fail (printf "storage.size: size must be between 1Mi and 1Pi (asked for %s)" (toJson .size)) -}}
{{- end -}}
{{- if .live -}}
{{- $was := (first .live.spec.volumeClaimTemplates).spec.resources.requests.storage -}}
{{- if lt $size (include "scalableapp-lib.scaled" (dict "quantity" $was "percent" 100000 "field" "storage.size") | atoi) -}}
{{- fail (printf "storage.size: size may grow but never shrink: a volume cannot give back space its data may use (%s, asked for %s)" $was (include "scalableapp-lib.quantity" .size)) -}}
{{- end -}}
{{- end -}}
{{- end }}
