{{/*
Fields shared by every step container of the pipeline: image, command, environment,
resources, security context and mounts. The caller adds `args`.
*/}}
{{- define "mlship.pipeline.container" -}}
image: {{ include "mlship.image" (dict "context" . "image" .Values.images.steps) }}
imagePullPolicy: {{ .Values.images.steps.pullPolicy }}
command:
  - mlship
env:
  - name: MLFLOW_TRACKING_URI
    value: {{ include "mlship.mlflow.trackingUri" . | quote }}
  # The root file system is read-only, so libraries that cache under $HOME write to /tmp.
  - name: HOME
    value: /tmp
{{- with .Values.pipeline.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
volumeMounts:
  - name: workspace
    mountPath: /workspace
  - name: pipeline-config
    mountPath: /etc/mlship
    readOnly: true
  - name: tmp
    mountPath: /tmp
  {{- if .Values.pipeline.data.existingClaim }}
  - name: data
    mountPath: /data
    readOnly: true
  {{- end }}
{{- end -}}

{{/*
Retry policy of the steps that talk to MLflow: only exit code 75 (MLflow unreachable after
the step's own bounded retries) is retried, with exponential backoff.
*/}}
{{- define "mlship.pipeline.retryStrategy" -}}
retryStrategy:
  limit: {{ .Values.pipeline.retry.limit | quote }}
  retryPolicy: OnFailure
  expression: "asInt(lastRetry.exitCode) == 75"
  backoff:
    duration: {{ .Values.pipeline.retry.backoffDuration | quote }}
    factor: {{ .Values.pipeline.retry.backoffFactor | quote }}
    maxDuration: {{ .Values.pipeline.retry.backoffMaxDuration | quote }}
{{- end -}}

{{/*
Output parameter read from /tmp/outputs/<name>. A gate output defaults to "false", so a
step that crashed before writing it cannot open a `when` gate.
Call with (dict "name" "passed" "default" "false"); "default" is optional.
*/}}
{{- define "mlship.pipeline.outputParameter" -}}
- name: {{ .name }}
  valueFrom:
    path: /tmp/outputs/{{ .name }}
    {{- if hasKey . "default" }}
    default: {{ .default | quote }}
    {{- end }}
{{- end -}}
