{{/*
nftproxy.validate fails the render for what the agent's own validation
(config.Validate) refuses and values.schema.json cannot express: a CIDR with
bits set past its prefix length, and a minSyncPeriod longer than
syncPeriod. Everything else is in the schema. Included by configmap.yaml.
*/}}
{{- define "nftproxy.validate" -}}
{{- $c := .Values.config }}
{{- range $field := list "clusterCIDRs" "serviceCIDRs" "nodePortAddresses" }}
{{- range $i, $cidr := get $c $field | default list }}
{{- if ne $cidr "primary" }}
{{- $masked := include "nftproxy.cidrIsMasked" $cidr }}
{{- if not $masked }}
{{- fail (printf "config.%s[%d]: %q has bits set past its prefix length: the agent refuses it" $field $i $cidr) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $min := include "nftproxy.durationNanos" $c.minSyncPeriod | float64 }}
{{- $max := include "nftproxy.durationNanos" $c.syncPeriod | float64 }}
{{- if gt $min $max }}
{{- fail (printf "config.minSyncPeriod: %s is longer than syncPeriod (%s): the agent refuses it" $c.minSyncPeriod $c.syncPeriod) }}
{{- end }}
{{- end }}

{{/*
nftproxy.cidrIsMasked returns "true" when a CIDR, already checked by the
schema, has no bits set past its prefix length: each 8-bit (IPv4) or 16-bit
(IPv6) group must be a multiple of 2^(bits of it past the prefix).
*/}}
{{- define "nftproxy.cidrIsMasked" -}}
{{- $addr := splitList "/" . | first }}
{{- $len := splitList "/" . | last | int }}
{{- $groups := list }}
{{- $width := 8 }}
{{- if contains ":" $addr }}
{{- $width = 16 }}
{{- $halves := splitList "::" $addr }}
{{- $head := list }}
{{- $tail := list }}
{{- if first $halves }}{{ $head = splitList ":" (first $halves) }}{{ end }}
{{- if and (eq (len $halves) 2) (last $halves) }}{{ $tail = splitList ":" (last $halves) }}{{ end }}
{{- $groups = $head }}
{{- range until (sub 8 (add (len $head) (len $tail)) | int) }}{{ $groups = append $groups "0" }}{{ end }}
{{- $groups = concat $groups $tail }}
{{- $groups = without $groups "" }}
{{- $hex := list }}
{{- range $groups }}{{ $hex = append $hex (printf "0x%s" .) }}{{ end }}
{{- $groups = $hex }}
{{- else }}
{{- $groups = splitList "." $addr }}
{{- end }}
{{- $ok := true }}
{{- range $i, $g := $groups }}
{{- $value := int $g }}
{{- $past := sub (mul (add $i 1) $width) $len | int }}
{{- if gt $past $width }}{{ $past = $width }}{{ end }}
{{- if gt $past 0 }}
{{- $unit := 1 }}
{{- range until $past }}{{ $unit = mul $unit 2 }}{{ end }}
{{- if ne (mod $value $unit) 0 }}{{ $ok = false }}{{ end }}
{{- end }}
{{- end }}
{{- if $ok }}true{{ end }}
{{- end }}

{{/*
nftproxy.durationNanos returns a Go duration, already checked by the
schema, in nanoseconds.
*/}}
{{- define "nftproxy.durationNanos" -}}
{{- $units := dict "ns" 1.0 "us" 1e3 "µs" 1e3 "ms" 1e6 "s" 1e9 "m" 6e10 "h" 3.6e12 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9.]+(ns|us|µs|ms|s|m|h)" (toString .) -1 }}
{{- $number := regexFind "^[0-9.]+" . }}
{{- $unit := trimPrefix $number . }}
{{- $total = addf $total (mulf (float64 $number) (get $units $unit)) }}
{{- end }}
{{- $total }}
{{- end }}
