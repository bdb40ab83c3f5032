{{/*
nftproxy.name is the chart name, or nameOverride.
*/}}
{{- define "nftproxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
nftproxy.fullname prefixes every resource name: fullnameOverride, else the
release name, with the chart name appended unless the release name already
contains it. Cut to 63 characters, the limit of a DNS label.
*/}}
{{- define "nftproxy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
nftproxy.chart is the chart name and version, for the helm.sh/chart label.
*/}}
{{- define "nftproxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
nftproxy.labels are the labels of every resource.
*/}}
{{- define "nftproxy.labels" -}}
helm.sh/chart: {{ include "nftproxy.chart" . }}
{{ include "nftproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: service-proxy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
nftproxy.selectorLabels select the pods of the DaemonSet. They must never
change for an installed release: a DaemonSet's selector is immutable.
*/}}
{{- define "nftproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nftproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
nftproxy.serviceAccountName is the ServiceAccount the pods run as.
*/}}
{{- define "nftproxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nftproxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
nftproxy.image is the container image reference.
*/}}
{{- define "nftproxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
nftproxy.bindHost returns the host part of a host:port bind address, without
the brackets of an IPv6 address.
*/}}
{{- define "nftproxy.bindHost" -}}
{{- $parts := splitList ":" . }}
{{- join ":" (initial $parts) | trimPrefix "[" | trimSuffix "]" }}
{{- end }}

{{/*
nftproxy.bindPort returns the port of a host:port bind address.
*/}}
{{- define "nftproxy.bindPort" -}}
{{- splitList ":" . | last }}
{{- end }}

{{/*
nftproxy.probeHost returns the address the kubelet should probe for a bind
address: nothing (the pod's IP, which is the node's) when the endpoint
listens on all addresses, and the bound address otherwise, since the pods
share the node's network.
*/}}
{{- define "nftproxy.probeHost" -}}
{{- $host := include "nftproxy.bindHost" . }}
{{- if not (has $host (list "" "0.0.0.0" "::")) }}
{{- $host }}
{{- end }}
{{- end }}

{{/*
nftproxy.isLoopback reports (as "true" or "") whether a bind address
listens on loopback only.
*/}}
{{- define "nftproxy.isLoopback" -}}
{{- $host := include "nftproxy.bindHost" . }}
{{- if or (hasPrefix "127." $host) (eq $host "::1") }}true{{ end }}
{{- end }}
