{{/* Chart name. */}}
{{- define "ds-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release + chart, unless the release name already holds the chart name. */}}
{{- define "ds-exporter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of the headless Service the peer prober resolves. */}}
{{- define "ds-exporter.peersServiceName" -}}
{{- printf "%s-peers" (include "ds-exporter.fullname" . | trunc 57 | trimSuffix "-") -}}
{{- end -}}

{{- define "ds-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ds-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ds-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ds-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ds-exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ds-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ds-exporter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* registry/repository@digest, or registry/repository:tag (tag defaults to the appVersion).
     No public image exists: an unset repository fails the install with the way to make one,
     rather than a DaemonSet in ImagePullBackOff. */}}
{{- define "ds-exporter.image" -}}
{{- $repo := required (printf "image.repository is not set, and no public ds-exporter image exists: build one with `npm run image`, push it to a registry you own with `skopeo copy oci-archive:dist/ds-exporter-oci.tar docker://REGISTRY/ds-exporter:%s`, then install with --set image.repository=REGISTRY/ds-exporter (README: Container image)" .Chart.AppVersion) .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .Values.image.registry) $repo -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* True when the web config is turned on and comes from either source. */}}
{{- define "ds-exporter.webConfigEnabled" -}}
{{- if and .Values.webConfig.enabled (or .Values.webConfig.existingSecret .Values.webConfig.config) -}}true{{- end -}}
{{- end -}}

{{- define "ds-exporter.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "ds-exporter.fullname" .)) .Values.webConfig.existingSecret -}}
{{- end -}}

{{/* True when the endpoint serves TLS: the inline web config has a tls_server_config, or a TLS Secret is mounted. */}}
{{- define "ds-exporter.tls" -}}
{{- if and (include "ds-exporter.webConfigEnabled" .) (or (hasKey .Values.webConfig.config "tls_server_config") .Values.webConfig.tlsSecret) -}}true{{- end -}}
{{- end -}}

{{/* True when the endpoint may ask for basic auth: the inline web config has basic_auth_users, or the config is in a Secret the chart cannot read. */}}
{{- define "ds-exporter.basicAuth" -}}
{{- if and (include "ds-exporter.webConfigEnabled" .) (or (hasKey .Values.webConfig.config "basic_auth_users") .Values.webConfig.existingSecret) -}}true{{- end -}}
{{- end -}}

{{- define "ds-exporter.pushEnabled" -}}
{{- if or .Values.push.token .Values.push.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "ds-exporter.pushSecretName" -}}
{{- default (printf "%s-push-token" (include "ds-exporter.fullname" .)) .Values.push.existingSecret -}}
{{- end -}}

{{/* The Prometheus Operator CRDs are served by the cluster (or given with --api-versions). */}}
{{- define "ds-exporter.hasMonitoringAPI" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- end -}}
