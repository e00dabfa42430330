{{/* The chart's name, or nameOverride. */}}
{{- define "aurora.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* The release-scoped name of the chart's objects, or fullnameOverride. */}}
{{- define "aurora.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "aurora.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "aurora.labels" -}}
app.kubernetes.io/name: {{ include "aurora.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include "aurora.selector" (list . "gateway") */}}
{{- define "aurora.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "aurora.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The image of one component: include "aurora.image" (list . "gateway") */}}
{{- define "aurora.image" -}}
{{- $root := index . 0 -}}
{{- $tag := $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- with $root.Values.image.registry }}{{ . }}/{{ end }}aurorachat/{{ index . 1 }}:{{ $tag }}
{{- end -}}

{{- define "aurora.jwtSecret" -}}
{{- .Values.jwt.existingSecret | default (printf "%s-jwt" (include "aurora.fullname" .)) -}}
{{- end -}}

{{/* Service endpoints (by value, or from connections.existingSecret) and settings shared by every component. */}}
{{- define "aurora.serviceEnv" -}}
{{- $secret := .Values.connections.existingSecret -}}
{{- range $env, $key := dict "AURORA_KAFKA_BROKERS" "kafka-brokers" "AURORA_REDIS_URL" "redis-url" "AURORA_MONGODB_URI" "mongodb-uri" }}
- name: {{ $env }}
  {{- if $secret }}
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $key }}}
  {{- else if eq $env "AURORA_KAFKA_BROKERS" }}
  value: {{ $.Values.kafka.brokers | quote }}
  {{- else if eq $env "AURORA_REDIS_URL" }}
  value: {{ $.Values.redis.url | quote }}
  {{- else }}
  value: {{ $.Values.mongodb.uri | quote }}
  {{- end }}
{{- end }}
- name: AURORA_KAFKA_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: AURORA_KAFKA_REPLICATION
  value: {{ .Values.kafka.replication | quote }}
- name: AURORA_LOG_FORMAT
  value: json
{{- end -}}

{{/* Where clients inside the cluster reach the gateways: the Service, or the host port on host-network dev nodes. */}}
{{- define "aurora.gatewayURL" -}}
{{- if .Values.hostNetwork -}}
http://127.0.0.1:{{ .Values.gateway.port }}
{{- else -}}
http://{{ include "aurora.fullname" . }}-gateway.{{ .Release.Namespace }}.svc:{{ .Values.gateway.service.port }}
{{- end -}}
{{- end -}}

{{/* Pod template metadata of one component: include "aurora.podMeta" (list . "gateway" $annotations) */}}
{{- define "aurora.podMeta" -}}
{{- $root := index . 0 -}}
labels:
  {{- include "aurora.selector" (list $root (index . 1)) | nindent 2 }}
  {{- with $root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  {{- with index . 2 }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with $root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The ServiceAccount of one component: include "aurora.serviceAccount" (list . "gateway") */}}
{{- define "aurora.serviceAccount" -}}
{{- printf "%s-%s" (include "aurora.fullname" (index . 0)) (index . 1) -}}
{{- end -}}

{{/* Pod spec shared by every component: include "aurora.podSpec" (list . "gateway" usesAPI);
     an empty component keeps the namespace's default ServiceAccount (the `helm test` pod). */}}
{{- define "aurora.podSpec" -}}
{{- $root := index . 0 -}}
{{- with $root -}}
# Only the operator talks to the Kubernetes API: the others get no token.
automountServiceAccountToken: {{ index $ 2 }}
{{- with index $ 1 }}
serviceAccountName: {{ include "aurora.serviceAccount" (list $root .) }}
{{- end }}
{{- if .Values.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "aurora.extraEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* A checksum of the settings a component's pods are started with (the shared service
     endpoints and its extra env), so a change rolls them: include "aurora.configChecksum" (list . .Values.gateway.env) */}}
{{- define "aurora.configChecksum" -}}
{{- $root := index . 0 -}}
{{- toJson (list $root.Values.kafka $root.Values.redis $root.Values.mongodb $root.Values.connections $root.Values.jwt (index . 1)) | sha256sum -}}
{{- end -}}

{{/* Whether webhooks are configured (inline endpoints or an existing Secret). */}}
{{- define "aurora.webhooks" -}}
{{- if or .Values.webhooks.existingSecret .Values.webhooks.endpoints }}true{{- end -}}
{{- end -}}

{{/* The Secret holding webhooks.yaml. */}}
{{- define "aurora.webhooksSecret" -}}
{{- .Values.webhooks.existingSecret | default (printf "%s-webhooks" (include "aurora.fullname" .)) -}}
{{- end -}}
