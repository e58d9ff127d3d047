{{/*
Naming and labels. Names follow the official chart: <release>-dask unless the
release name already contains the chart name (then the release name alone).
*/}}
{{- define "dask.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dask.fullname" -}}
{{- $name := .Values.nameOverride | default .Chart.Name -}}
{{- $full := printf "%s-%s" .Release.Name $name -}}
{{- if .Values.fullnameOverride -}}
{{- $full = .Values.fullnameOverride -}}
{{- else if contains $name .Release.Name -}}
{{- $full = .Release.Name -}}
{{- end -}}
{{- $full | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dask.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Pod selector labels; call with (dict "root" $ "component" "worker"). */}}
{{- define "dask.selectorLabels" -}}
app: {{ include "dask.name" .root }}
release: {{ .root.Release.Name | quote }}
component: {{ .component }}
{{- end -}}

{{/* Object labels: the selector labels plus chart and heritage. */}}
{{- define "dask.labels" -}}
{{ include "dask.selectorLabels" . }}
heritage: {{ .root.Release.Service | quote }}
chart: {{ include "dask.chart" .root }}
{{- end -}}

{{/* Address workers and Jupyter use to reach the scheduler Service. */}}
{{- define "dask.schedulerAddress" -}}
{{ include "dask.fullname" . }}-scheduler:{{ .Values.scheduler.servicePort }}
{{- end -}}

{{/*
Pod scheduling and identity fields shared by every Deployment;
call with the component's values (scheduler, worker, jupyter).
*/}}
{{- define "dask.podPlacement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .serviceAccountName }}
serviceAccountName: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Container probes; call with the component's values. */}}
{{- define "dask.probes" -}}
{{- with .livenessProbe }}
livenessProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .readinessProbe }}
readinessProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
One worker Deployment. Call with
(dict "root" $ "worker" <worker values> "name" <Deployment name>); used for the
main worker group and for every entry of additional_worker_groups.
*/}}
{{- define "dask.workerDeployment" -}}
{{- $root := .root -}}
{{- $worker := .worker -}}
{{- $limits := dig "limits" dict ($worker.resources | default dict) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- include "dask.labels" (dict "root" $root "component" "worker") | nindent 4 }}
spec:
  replicas: {{ $worker.replicas }}
  selector:
    matchLabels:
      {{- include "dask.selectorLabels" (dict "root" $root "component" "worker") | nindent 6 }}
  {{- with $worker.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "dask.selectorLabels" (dict "root" $root "component" "worker") | nindent 8 }}
      {{- with $worker.annotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      {{- with $worker.image.pullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ($worker.mounts | default dict).volumes }}
      volumes:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ include "dask.fullname" $root }}-worker
          image: "{{ $worker.image.repository }}:{{ $worker.image.tag }}"
          {{- with $worker.image.pullPolicy }}
          imagePullPolicy: {{ . }}
          {{- end }}
          args:
            - {{ $worker.image.dask_worker }}
            - {{ $worker.custom_scheduler_url | default (include "dask.schedulerAddress" $root) }}
            {{- if $limits }}
            - --nthreads
            - {{ $worker.threads_per_worker | default $limits.cpu | default $worker.default_resources.cpu | quote }}
            - --memory-limit
            - {{ $limits.memory | default $worker.default_resources.memory | quote }}
            {{- end }}
            - --no-dashboard
            - --dashboard-address
            - {{ $worker.portDashboard | quote }}
            {{- with $worker.port }}
            - --worker-port
            - {{ . | quote }}
            {{- end }}
            {{- with $worker.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: dashboard
              containerPort: {{ $worker.portDashboard }}
          {{- with $worker.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $worker.env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with ($worker.mounts | default dict).volumeMounts }}
          volumeMounts:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with include "dask.probes" $worker | trim }}
          {{- . | nindent 10 }}
          {{- end }}
      {{- with include "dask.podPlacement" $worker | trim }}
      {{- . | nindent 6 }}
      {{- end }}
{{- end -}}
