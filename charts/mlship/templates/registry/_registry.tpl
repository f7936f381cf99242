{{/*
"true" when the registry keeps anything on its PVC (the SQLite file or local artifacts),
otherwise empty.
*/}}
{{- define "mlship.registry.needsVolume" -}}
{{- if or (eq .Values.registry.backend.type "sqlite") (eq .Values.registry.artifacts.type "pvc") -}}
true
{{- end -}}
{{- end -}}

{{/*
Checks of registry settings that the schema cannot express with a message naming the key.
Renders nothing; fails the render on a conflict.
*/}}
{{- define "mlship.registry.validate" -}}
{{- $registry := .Values.registry -}}
{{- if eq .Values.environment "prod" -}}
{{- if ne $registry.backend.type "postgresql" -}}
{{- fail "registry.backend.type must be postgresql when environment is prod: SQLite on a volume is for dev only" -}}
{{- end -}}
{{- if ne $registry.artifacts.type "s3" -}}
{{- fail "registry.artifacts.type must be s3 when environment is prod: artifacts on the registry's volume are for dev only" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $registry.backend.type "sqlite") (gt (int $registry.replicas) 1) -}}
{{- fail (printf "registry.replicas is %v but registry.backend.type sqlite allows only 1 replica: use postgresql to scale out" $registry.replicas) -}}
{{- end -}}
{{- if eq $registry.backend.type "postgresql" -}}
{{- if not $registry.backend.postgresql.host -}}
{{- fail "registry.backend.postgresql.host is required when registry.backend.type is postgresql" -}}
{{- end -}}
{{- if not $registry.backend.postgresql.existingSecret -}}
{{- fail "registry.backend.postgresql.existingSecret is required when registry.backend.type is postgresql: name an existing Secret with the database user name and password" -}}
{{- end -}}
{{- end -}}
{{- if eq $registry.artifacts.type "s3" -}}
{{- if not $registry.artifacts.s3.bucket -}}
{{- fail "registry.artifacts.s3.bucket is required when registry.artifacts.type is s3" -}}
{{- end -}}
{{- if not $registry.artifacts.s3.existingSecret -}}
{{- fail "registry.artifacts.s3.existingSecret is required when registry.artifacts.type is s3: name an existing Secret with the access key pair" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Backend store URI. The PostgreSQL credentials stay in the Secret: the URI refers to the
container's DB_USER and DB_PASSWORD variables, which Kubernetes expands in args. The
driver is named because the registry image ships psycopg2, and MLflow 3.17 otherwise
loads psycopg (version 3) for a plain postgresql:// URI.
NOTE: the password is placed in the URI as it is, so it must not contain URI delimiters
such as @, / or :.
*/}}
{{- define "mlship.registry.backendStoreUri" -}}
{{- $backend := .Values.registry.backend -}}
{{- if eq $backend.type "postgresql" -}}
{{- $pg := $backend.postgresql -}}
{{- printf "postgresql+psycopg2://$(DB_USER):$(DB_PASSWORD)@%s:%v/%s?sslmode=%s" $pg.host $pg.port $pg.database $pg.sslMode -}}
{{- else -}}
sqlite:////mlflow/mlflow.db
{{- end -}}
{{- end -}}

{{- define "mlship.registry.artifactsDestination" -}}
{{- $artifacts := .Values.registry.artifacts -}}
{{- if eq $artifacts.type "s3" -}}
{{- printf "s3://%s/%s" $artifacts.s3.bucket $artifacts.s3.prefix | trimSuffix "/" -}}
{{- else -}}
/mlflow/artifacts
{{- end -}}
{{- end -}}

{{/*
Host header patterns the server accepts: the Service's in-cluster names with any port,
localhost, and registry.allowedHosts.
*/}}
{{- define "mlship.registry.allowedHosts" -}}
{{- $service := include "mlship.registry.fullname" . -}}
{{- $hosts := list -}}
{{- range $name := list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s.svc.cluster.local" $service .Release.Namespace) "localhost" "127.0.0.1" -}}
{{- $hosts = append $hosts $name -}}
{{- $hosts = append $hosts (printf "%s:*" $name) -}}
{{- end -}}
{{- concat $hosts .Values.registry.allowedHosts | join "," -}}
{{- end -}}
