{{/*
Egress rule to DNS in any namespace (kube-dns or CoreDNS), UDP and TCP.
*/}}
{{- define "mlship.networkPolicy.dnsEgress" -}}
- to:
    - namespaceSelector: {}
  ports:
    - protocol: UDP
      port: {{ .Values.networkPolicy.dnsPort }}
    - protocol: TCP
      port: {{ .Values.networkPolicy.dnsPort }}
{{- end -}}

{{/*
Egress rule to the chart's MLflow registry pods on port 5000.
*/}}
{{- define "mlship.networkPolicy.registryEgress" -}}
{{- if .Values.registry.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "mlship.selectorLabels" (dict "context" . "component" "registry") | nindent 10 }}
  ports:
    - protocol: TCP
      port: 5000
{{- end }}
{{- with .Values.networkPolicy.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Ingress source: pods of this release in the release namespace with the given components.
Call with (dict "context" $ "components" (list "pipeline" "serving")).
*/}}
{{- define "mlship.networkPolicy.releasePods" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ include "mlship.name" .context }}
      app.kubernetes.io/instance: {{ .context.Release.Name }}
    matchExpressions:
      - key: app.kubernetes.io/component
        operator: In
        values:
          {{- toYaml .components | nindent 10 }}
{{- end -}}

{{/*
Ingress sources from other namespaces, matched by the kubernetes.io/metadata.name label.
*/}}
{{- define "mlship.networkPolicy.namespaces" -}}
{{- range . }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ . | quote }}
{{- end }}
{{- end -}}
