{{/*
A NOTES.txt warning for the images a release runs by a tag alone, in the words of the operator's
ImagesPinned condition (operator/api/image-pins.ts, isPinned): a tag is a pointer its registry may
move, so pods of one release started at different times may run different builds. Takes a list of
[values field, image] pairs (an empty image, a field left unset, is skipped); renders nothing when
every image carries a digest.
*/}}
{{- define "scalableapp-lib.images.unpinnedNote" -}}
{{- $unpinned := list -}}
{{- range . -}}
{{- $image := index . 1 | default "" | toString -}}
{{- if and $image (not (regexMatch "@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$" $image)) -}}
{{- $unpinned = append $unpinned (printf "%s %s" (index . 0) $image) -}}
{{- end -}}
{{- end -}}
{{- if $unpinned }}

WARNING: not pinned by digest: {{ join ", " $unpinned }}. A tag can move to another build, so pods
started at different times may run different versions; set each as name:tag@sha256:<digest>.
{{- end -}}
{{- end }}
