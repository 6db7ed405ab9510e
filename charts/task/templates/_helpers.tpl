{{/* Names, labels and the pieces every taskservice pod shares. */}}

{{- define "task.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's prefix: the release name when it already contains the chart's name. */}}
{{- define "task.fullname" -}}
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

{{- define "task.selectorLabels" -}}
app.kubernetes.io/name: {{ include "task.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "task.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "task.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | replace "+" "_" | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "task.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest pins the exact image. */}}
{{- define "task.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "task.imageTag" .) }}
{{- end }}
{{- end }}

{{- define "task.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "task.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret that holds DATABASE_URL, and its key (see database: in values.yaml). */}}
{{- define "task.databaseSecretName" -}}
{{- if .Values.postgresql.enabled }}
{{- printf "%s-postgresql" (include "task.fullname" .) }}
{{- else if .Values.database.url }}
{{- include "task.fullname" . }}
{{- else }}
{{- required "database: set existingSecret, url, or postgresql.enabled=true" .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{- define "task.databaseSecretKey" -}}
{{- if or .Values.postgresql.enabled .Values.database.url }}DATABASE_URL{{ else }}{{ .Values.database.existingSecretKey }}{{ end }}
{{- end }}

{{/* Whether the chart renders a Secret of its own (the database URL, tokens, secret settings). */}}
{{- define "task.ownSecret" -}}
{{- if or
    (and .Values.database.url (not .Values.postgresql.enabled))
    (and (include "task.apiClients" .) .Values.workers.agent.token (not .Values.workers.agent.existingSecret))
    (and .Values.auth.oidc.clientSecret (not .Values.auth.oidc.existingSecret))
    .Values.secretEnv }}true{{ end }}
{{- end }}

{{/* Whether the workers are agents of the API server (mode agent or kubernetes): no database. */}}
{{- define "task.agentMode" -}}
{{- if has .Values.workers.mode (list "agent" "kubernetes") }}true{{ end }}
{{- end }}

{{/* Whether something calls the API server with workers.agent's address and token: agents, or
the controller (it reports in the agents' name). */}}
{{- define "task.apiClients" -}}
{{- if or (include "task.agentMode" .) .Values.controller.enabled }}true{{ end }}
{{- end }}

{{/* TASK_SERVICE_TOKEN of agents and the controller, by reference. */}}
{{- define "task.env.apiToken" -}}
{{- if or .Values.workers.agent.existingSecret .Values.workers.agent.token -}}
- name: TASK_SERVICE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.workers.agent.existingSecret | default (include "task.fullname" .) }}
      key: {{ ternary .Values.workers.agent.existingSecretKey "TASK_SERVICE_TOKEN" (ne .Values.workers.agent.existingSecret "") }}
{{- end }}
{{- end }}

{{/* The namespace the Kubernetes agents and the controller work in: their pod's own. */}}
{{- define "task.env.kubernetesNamespace" -}}
- name: TASK_KUBERNETES_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* A value of a container type as the file has it: a string (YAML reads 800 as a float here). */}}
{{- define "task.string" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) }}{{ int64 . }}{{ else }}{{ toString . }}{{ end }}
{{- end }}

{{/* The container types file (TASK_CONTAINER_TYPES) from containerTypes: type name -> {image,
entrypoint, args, env, resources: {requests, limits}, service_account, timeout_seconds,
max_retries, backoff_seconds, description, parameters}; what a value leaves out is left out. */}}
{{- define "task.containerTypes" -}}
{{- $types := dict }}
{{- range $name, $type := .Values.containerTypes }}
{{- $out := dict "image" $type.image }}
{{- with $type.entrypoint }}{{ $_ := set $out "entrypoint" . }}{{ end }}
{{- if $type.args }}
{{- $args := list }}
{{- range $type.args }}{{ $args = append $args (include "task.string" .) }}{{ end }}
{{- $_ := set $out "args" $args }}
{{- end }}
{{- if $type.env }}
{{- $env := dict }}
{{- range $key, $value := $type.env }}{{ $_ := set $env $key (include "task.string" $value) }}{{ end }}
{{- $_ := set $out "env" $env }}
{{- end }}
{{- with $type.resources }}
{{- $resources := dict }}
{{- range $kind, $quantities := . }}
{{- $each := dict }}
{{- range $resource, $quantity := $quantities }}{{ $_ := set $each $resource (include "task.string" $quantity) }}{{ end }}
{{- $_ := set $resources $kind $each }}
{{- end }}
{{- $_ := set $out "resources" $resources }}
{{- end }}
{{- with $type.serviceAccount }}{{ $_ := set $out "service_account" . }}{{ end }}
{{- if hasKey $type "timeoutSeconds" }}{{ $_ := set $out "timeout_seconds" $type.timeoutSeconds }}{{ end }}
{{- if hasKey $type "maxRetries" }}{{ $_ := set $out "max_retries" $type.maxRetries }}{{ end }}
{{- if hasKey $type "backoffSeconds" }}{{ $_ := set $out "backoff_seconds" $type.backoffSeconds }}{{ end }}
{{- with $type.description }}{{ $_ := set $out "description" . }}{{ end }}
{{- if $type.parameters }}
{{- $parameters := list }}
{{- range $type.parameters }}
{{- $parameter := omit . "default" }}
{{- if hasKey . "default" }}{{ $_ := set $parameter "default" (include "task.string" .default) }}{{ end }}
{{- $parameters = append $parameters $parameter }}
{{- end }}
{{- $_ := set $out "parameters" $parameters }}
{{- end }}
{{- $_ := set $types $name $out }}
{{- end }}
{{- toYaml $types }}
{{- end }}

{{- define "task.scheme" -}}
{{- if .Values.tls.secretName }}https{{ else }}http{{ end }}
{{- end }}

{{/* Where agents reach the API server. */}}
{{- define "task.agentAddress" -}}
{{- .Values.workers.agent.address | default (printf "%s://%s:%d" (include "task.scheme" .) .Values.service.name (int .Values.service.port)) }}
{{- end }}

{{- define "task.env.databaseUrl" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "task.databaseSecretName" . }}
      key: {{ include "task.databaseSecretKey" . }}
{{- end }}

{{/* Settings every taskservice container gets; `extra` is the component's own env map. */}}
{{- define "task.env.common" -}}
{{- $root := .root -}}
- name: EMAIL_OUTBOX_DIR
  value: /var/lib/taskservice/outbox
{{- with $root.Values.retention }}
{{- if .succeeded }}
- name: RETENTION_SUCCEEDED
  value: {{ .succeeded | quote }}
{{- end }}
{{- if .failed }}
- name: RETENTION_FAILED
  value: {{ .failed | quote }}
{{- end }}
{{- if .cancelled }}
- name: RETENTION_CANCELLED
  value: {{ .cancelled | quote }}
{{- end }}
{{- end }}
{{- range $name, $value := merge (dict) (.extra | default dict) $root.Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* The secret settings of secretEnv, each by reference (never envFrom: agents must not see DATABASE_URL). */}}
{{- define "task.env.secrets" -}}
{{- range $name, $_ := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "task.fullname" $ }}
      key: {{ $name }}
{{- end }}
{{- end }}

{{/* Every taskservice container writes only here: /tmp and the outbox of send_email. */}}
{{- define "task.writableMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/taskservice
{{- end }}

{{- define "task.writableVolumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- end }}

{{/* A pod's annotations: the user's, and a checksum of the chart's Secret so that pods restart
when a setting in it changes (environment variables are read at start). */}}
{{- define "task.podAnnotations" -}}
{{- if include "task.ownSecret" .root }}
checksum/secret: {{ include (print .root.Template.BasePath "/secret.yaml") .root | sha256sum }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The server refuses to start on a pod's address without auth: catch it at install time. */}}
{{- define "task.validate" -}}
{{- if and (not .Values.auth.required) (not .Values.auth.allowInsecure) }}
{{- fail "auth.required=false needs auth.allowInsecure=true: a server on a pod's address without auth is open to the whole cluster" }}
{{- end }}
{{- if le (int .Values.server.terminationGracePeriodSeconds) (add .Values.server.preStopSleep .Values.server.shutdownGrace | int) }}
{{- fail (printf "server.terminationGracePeriodSeconds (%v) must exceed server.preStopSleep + server.shutdownGrace (%v)" .Values.server.terminationGracePeriodSeconds (add .Values.server.preStopSleep .Values.server.shutdownGrace)) }}
{{- end }}
{{- if le (int .Values.workers.terminationGracePeriodSeconds) (int .Values.workers.shutdownGrace) }}
{{- fail (printf "workers.terminationGracePeriodSeconds (%v) must exceed workers.shutdownGrace (%v)" .Values.workers.terminationGracePeriodSeconds .Values.workers.shutdownGrace) }}
{{- end }}
{{- if and (include "task.apiClients" .) (not .Values.workers.agent.existingSecret) (not .Values.workers.agent.token) .Values.auth.required }}
{{- $who := ternary (printf "workers.mode=%s" .Values.workers.mode) "controller.enabled" (ne (include "task.agentMode" .) "") }}
{{- fail (printf "%s with auth.required: set workers.agent.existingSecret (or workers.agent.token) to an agent-role token" $who) }}
{{- end }}
{{- if and .Values.containerTypes (ne .Values.workers.mode "kubernetes") }}
{{- fail "containerTypes needs workers.mode=kubernetes: only Kubernetes agents run container task types" }}
{{- end }}
{{- with .Values.workers.autoscaling }}
{{- if and .enabled (eq (int .minReplicas) 0) (ne .provider "keda") }}
{{- fail "workers.autoscaling.minReplicas=0 needs provider=keda (a HorizontalPodAutoscaler cannot scale to zero)" }}
{{- end }}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) }}
{{- fail "workers.autoscaling.minReplicas must not exceed maxReplicas" }}
{{- end }}
{{- end }}
{{- if and .Values.auth.oidc.issuer (not .Values.auth.oidc.existingSecret) (not .Values.auth.oidc.clientSecret) }}
{{- fail "auth.oidc.issuer needs auth.oidc.existingSecret (or auth.oidc.clientSecret)" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.auth.required (not .Values.auth.metricsPublic) (not .Values.serviceMonitor.tokenSecret.name) }}
{{- fail "serviceMonitor.enabled with auth: set auth.metricsPublic=true or serviceMonitor.tokenSecret.name" }}
{{- end }}
{{- end }}
