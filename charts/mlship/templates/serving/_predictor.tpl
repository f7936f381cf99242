{{/*
One Seldon predictor running the serve image with the given model URI.
Call with (dict "context" $ "name" "main" "modelUri" "models:/m/3" "replicas" 1
"traffic" 90 "shadow" false "autoscaling" false). Pass "traffic" only when the
SeldonDeployment splits traffic, because Seldon rejects a traffic field on a lone predictor
that is not 100.
*/}}
{{- define "mlship.serving.predictor" -}}
{{- $ := .context -}}
{{- $serving := $.Values.serving -}}
- name: {{ .name }}
  {{- if not .autoscaling }}
  replicas: {{ .replicas }}
  {{- end }}
  {{- if hasKey . "traffic" }}
  traffic: {{ .traffic }}
  {{- end }}
  {{- if .shadow }}
  shadow: true
  {{- end }}
  labels:
    {{- include "mlship.selectorLabels" (dict "context" $ "component" "serving") | nindent 4 }}
    mlship.io/predictor: {{ .name }}
  graph:
    name: model
    type: MODEL
    children: []
    parameters:
      - name: model_uri
        type: STRING
        value: {{ .modelUri | quote }}
  componentSpecs:
    - metadata:
        labels:
          {{- include "mlship.labels" (dict "context" $ "component" "serving") | nindent 10 }}
          mlship.io/predictor: {{ .name }}
        {{- with $serving.podAnnotations }}
        annotations:
          {{- toYaml . | nindent 10 }}
        {{- end }}
      {{- if .autoscaling }}
      hpaSpec:
        minReplicas: {{ $serving.autoscaling.minReplicas }}
        maxReplicas: {{ $serving.autoscaling.maxReplicas }}
        metrics:
          # Seldon Core 1.18 takes the autoscaling/v2beta1 metric format here.
          - type: Resource
            resource:
              name: cpu
              targetAverageUtilization: {{ $serving.autoscaling.targetCPUUtilizationPercentage }}
      {{- end }}
      spec:
        automountServiceAccountToken: false
        securityContext:
          {{- toYaml $.Values.podSecurityContext | nindent 10 }}
        {{- with include "mlship.podScheduling" (dict "context" $ "values" $serving) }}
        {{- . | nindent 8 }}
        {{- end }}
        containers:
          # The container name matches graph.name, which is how Seldon pairs them.
          - name: model
            image: {{ include "mlship.image" (dict "context" $ "image" $.Values.images.serve) }}
            imagePullPolicy: {{ $.Values.images.serve.pullPolicy }}
            command:
              - seldon-core-microservice
              - mlship.serving.MlshipModel
              - --service-type
              - MODEL
            env:
              - name: MLFLOW_TRACKING_URI
                value: {{ include "mlship.mlflow.trackingUri" $ | quote }}
              - name: HOME
                value: /tmp
              # prometheus-client keeps the metrics of all server workers in this folder.
              - name: PROMETHEUS_MULTIPROC_DIR
                value: /tmp/prometheus
              - name: GUNICORN_WORKERS
                value: {{ $serving.workers | quote }}
              - name: GUNICORN_THREADS
                value: {{ $serving.threads | quote }}
            readinessProbe:
              httpGet:
                path: /health/status
                port: 9000
              {{- toYaml $serving.readinessProbe | nindent 14 }}
            livenessProbe:
              httpGet:
                path: /health/ping
                port: 9000
              {{- toYaml $serving.livenessProbe | nindent 14 }}
            {{- with $serving.resources }}
            resources:
              {{- toYaml . | nindent 14 }}
            {{- end }}
            securityContext:
              {{- toYaml $.Values.containerSecurityContext | nindent 14 }}
            volumeMounts:
              - name: tmp
                mountPath: /tmp
              - name: prometheus-multiproc
                mountPath: /tmp/prometheus
        volumes:
          - name: tmp
            emptyDir: {}
          - name: prometheus-multiproc
            emptyDir: {}
{{- end -}}
