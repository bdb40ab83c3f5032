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

{{/*
nftproxy.apiServer decides where the pods reach the API server, and returns
it as YAML for fromYaml:

  host, port  the values of KUBERNETES_SERVICE_HOST and
              KUBERNETES_SERVICE_PORT; no host means the kubelet's, the
              "kubernetes" Service's ClusterIP.
  source      where they come from: "values" (an explicit apiServer.host),
              "in-cluster" (apiServer.host ""), "kube-public/cluster-info"
              or "kube-system/kubeadm-config" (apiServer.host auto), or
              "no-cluster" (auto, rendered without a cluster, as by helm
              template: lookup answers nothing).

With auto on a cluster and no address in either ConfigMap, it fails: the
install would give pods that can never reach the API server, and only the
installer knows a better address.
*/}}
{{- define "nftproxy.apiServer" -}}
{{- $host := .Values.apiServer.host | default "" | toString }}
{{- if ne $host "auto" }}
{{- if $host }}
host: {{ $host | quote }}
port: {{ .Values.apiServer.port | quote }}
source: values
{{- else }}
source: in-cluster
{{- end }}
{{- else if not (lookup "v1" "Namespace" "" "kube-system") }}
{{- /* kube-system exists in every cluster: nothing there means no cluster. */}}
source: no-cluster
{{- else }}
{{- $found := include "nftproxy.apiServerFromClusterInfo" . }}
{{- if not $found }}
{{- $found = include "nftproxy.apiServerFromKubeadmConfig" . }}
{{- end }}
{{- if not $found }}
{{- fail `apiServer.host is "auto", but this cluster publishes no API server address: neither the ConfigMap kube-public/cluster-info (a kubeconfig in key "kubeconfig") nor kube-system/kubeadm-config (controlPlaneEndpoint in key "ClusterConfiguration") gives one. nftproxy replaces kube-proxy, so it cannot reach the API server through the "kubernetes" Service's ClusterIP: nothing serves that address until nftproxy runs. Give an address at which the API server answers from every node without a service proxy (a load balancer in front of the API servers, or a control-plane node's IP; it must be in the API server's certificate): --set apiServer.host=ADDRESS --set apiServer.port=PORT. Or, if kube-proxy keeps running or something else serves the ClusterIP, keep the in-cluster default: --set apiServer.host=""` }}
{{- end }}
{{- $found }}
{{- end }}
{{- end }}

{{/*
nftproxy.apiServerFromClusterInfo returns host, port and source (as for
nftproxy.apiServer) from the kubeconfig that kubeadm publishes in
kube-public/cluster-info for joining nodes, or nothing. A server URL with a
path (an API server behind a proxy) cannot be given as host and port, and
is passed over.
*/}}
{{- define "nftproxy.apiServerFromClusterInfo" -}}
{{- $cm := lookup "v1" "ConfigMap" "kube-public" "cluster-info" }}
{{- $kubeconfig := dig "data" "kubeconfig" "" $cm }}
{{- $server := "" }}
{{- if $kubeconfig }}
{{- range (fromYaml $kubeconfig).clusters | default list }}
{{- if not $server }}
{{- $server = dig "cluster" "server" "" . }}
{{- end }}
{{- end }}
{{- end }}
{{- if $server }}
{{- $url := urlParse $server }}
{{- if and $url.hostname (has $url.path (list "" "/")) }}
{{- include "nftproxy.splitHostPort" (dict "hostPort" $url.host "defaultPort" (ternary "80" "443" (eq $url.scheme "http"))) }}
source: kube-public/cluster-info
{{- end }}
{{- end }}
{{- end }}

{{/*
nftproxy.apiServerFromKubeadmConfig returns host, port and source (as for
nftproxy.apiServer) from controlPlaneEndpoint in kubeadm's
ClusterConfiguration, kept in kube-system/kubeadm-config, or nothing.
kubeadm's default API server port is 6443.
*/}}
{{- define "nftproxy.apiServerFromKubeadmConfig" -}}
{{- $cm := lookup "v1" "ConfigMap" "kube-system" "kubeadm-config" }}
{{- $clusterConfig := dig "data" "ClusterConfiguration" "" $cm }}
{{- $endpoint := "" }}
{{- if $clusterConfig }}
{{- $endpoint = (fromYaml $clusterConfig).controlPlaneEndpoint | default "" | toString }}
{{- end }}
{{- if $endpoint }}
{{- include "nftproxy.splitHostPort" (dict "hostPort" $endpoint "defaultPort" "6443") }}
source: kube-system/kubeadm-config
{{- end }}
{{- end }}

{{/*
nftproxy.splitHostPort splits .hostPort, "host", "host:port", "[ipv6]",
"[ipv6]:port" or a bare IPv6 address, into YAML host and port lines, the
port defaulting to .defaultPort. The host loses an IPv6 address's brackets:
the client adds them back when it joins host and port.
*/}}
{{- define "nftproxy.splitHostPort" -}}
{{- $hostPort := .hostPort }}
{{- if and (not (hasPrefix "[" $hostPort)) (gt (len (splitList ":" $hostPort)) 2) }}
{{- $hostPort = printf "[%s]" $hostPort }}
{{- end }}
{{- $url := urlParse (printf "https://%s" $hostPort) }}
{{- $port := $url.host | trimPrefix "[" | trimPrefix $url.hostname | trimPrefix "]" | trimPrefix ":" }}
host: {{ $url.hostname | quote }}
port: {{ $port | default .defaultPort | quote }}
{{- end }}
