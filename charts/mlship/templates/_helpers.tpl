{{/*
Chart name, truncated to 63 characters because Kubernetes label values and DNS-1123
names allow no more.
*/}}
{{- define "mlship.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name: release-chart, or the release name alone when it already contains the chart
name. Truncated to 43 characters so that the longest suffix the chart appends
("-pipeline-config", "-serving-metrics", "-grafana-dashboard") still fits in 63.
*/}}
{{- define "mlship.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 43 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mlship.pipeline.fullname" -}}
{{- printf "%s-pipeline" (include "mlship.fullname" .) -}}
{{- end -}}

{{- define "mlship.registry.fullname" -}}
{{- printf "%s-registry" (include "mlship.fullname" .) -}}
{{- end -}}

{{- define "mlship.serving.fullname" -}}
{{- printf "%s-serving" (include "mlship.fullname" .) -}}
{{- end -}}

{{- define "mlship.monitoring.fullname" -}}
{{- printf "%s-monitoring" (include "mlship.fullname" .) -}}
{{- end -}}

{{- define "mlship.pipeline.configMapName" -}}
{{- printf "%s-config" (include "mlship.pipeline.fullname" .) -}}
{{- end -}}

{{- define "mlship.pipeline.serviceAccountName" -}}
{{- if .Values.pipeline.serviceAccount.create -}}
{{- default (include "mlship.pipeline.fullname" .) .Values.pipeline.serviceAccount.name -}}
{{- else -}}
{{- required "pipeline.serviceAccount.name is required when pipeline.serviceAccount.create is false" .Values.pipeline.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mlship.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: name, instance and component only, because a Deployment's selector
cannot change after creation. Call with (dict "context" $ "component" "registry").
*/}}
{{- define "mlship.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlship.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Metadata labels: the selector labels, the recommended app.kubernetes.io labels and
commonLabels. Call with (dict "context" $ "component" "registry").
*/}}
{{- define "mlship.labels" -}}
{{ include "mlship.selectorLabels" . }}
app.kubernetes.io/part-of: mlship
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
helm.sh/chart: {{ include "mlship.chart" .context }}
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Image reference of one of the chart's images. Call with (dict "context" $ "image" .Values.images.steps).
*/}}
{{- define "mlship.image" -}}
{{- printf "%s:%s" .image.repository (default .context.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/*
MLflow tracking URI: mlflow.trackingUri, or the chart's registry Service.
*/}}
{{- define "mlship.mlflow.trackingUri" -}}
{{- if .Values.mlflow.trackingUri -}}
{{- .Values.mlflow.trackingUri -}}
{{- else if .Values.registry.enabled -}}
{{- printf "http://%s.%s.svc:%v" (include "mlship.registry.fullname" .) .Release.Namespace .Values.registry.service.port -}}
{{- else -}}
{{- fail "mlflow.trackingUri is required when registry.enabled is false: set it to the URI of an external MLflow server" -}}
{{- end -}}
{{- end -}}

{{/*
MLflow alias that the pipeline's register step sets.
*/}}
{{- define "mlship.pipeline.alias" -}}
{{- default .Values.environment .Values.pipeline.alias -}}
{{- end -}}

{{/*
Model URI of a pinned version, or of the alias when the version is empty.
Call with (dict "context" $ "version" "3" "alias" "dev").
*/}}
{{- define "mlship.modelUri" -}}
{{- $name := .context.Values.model.name -}}
{{- if .version -}}
{{- printf "models:/%s/%v" $name .version -}}
{{- else -}}
{{- printf "models:/%s@%s" $name (required "serving.model.alias is required when serving.model.version is empty" .alias) -}}
{{- end -}}
{{- end -}}

{{/*
Pod-level scheduling and image-pull fields shared by the chart's pods.
Call with (dict "context" $ "values" .Values.registry).
*/}}
{{- define "mlship.podScheduling" -}}
{{- with .context.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
