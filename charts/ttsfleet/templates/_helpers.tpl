{{/* Names, labels and shared pod settings. */}}

{{- define "ttsfleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of a component's objects: <fullname>-operator, <fullname>-router. */}}
{{- define "ttsfleet.componentName" -}}
{{- printf "%s-%s" (include "ttsfleet.fullname" .root) .component -}}
{{- end -}}

{{/* Selector labels of a component; call with (dict "root" $ "component" "router"). */}}
{{- define "ttsfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ttsfleet.labels" -}}
{{ include "ttsfleet.selectorLabels" . }}
app.kubernetes.io/part-of: ttsfleet
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* metadata for a component's object: name, namespace, labels. */}}
{{- define "ttsfleet.metadata" -}}
name: {{ include "ttsfleet.componentName" . }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "ttsfleet.labels" . | nindent 2 }}
{{- end -}}

{{/* An image reference; call with (dict "image" .Values.image "root" $). */}}
{{- define "ttsfleet.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* The namespace of the TTSPools the router serves. */}}
{{- define "ttsfleet.routerNamespace" -}}
{{- .Values.router.poolNamespace | default .Release.Namespace -}}
{{- end -}}

{{/*
RBAC for a component: for each of .namespaces a Role and RoleBinding, or a
ClusterRole and ClusterRoleBinding where the namespace is "" (the whole
cluster). Call with (dict "root" $ "component" "router" "namespaces" (list "ns") "rules" <list>).
*/}}
{{- define "ttsfleet.rbac" -}}
{{- $root := .root -}}
{{- $name := include "ttsfleet.componentName" . -}}
{{- $labels := include "ttsfleet.labels" . -}}
{{- range $namespace := .namespaces }}
{{- $prefix := ternary "" "Cluster" (ne $namespace "") }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ $prefix }}Role
metadata:
  name: {{ $name }}
  {{- with $namespace }}
  namespace: {{ . }}
  {{- end }}
  labels:
    {{- $labels | nindent 4 }}
rules:
  {{- toYaml $.rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ $prefix }}RoleBinding
metadata:
  name: {{ $name }}
  {{- with $namespace }}
  namespace: {{ . }}
  {{- end }}
  labels:
    {{- $labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {{ $prefix }}Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $name }}
    namespace: {{ $root.Release.Namespace }}
{{- end }}
{{- end -}}

{{/* Pod and container hardening shared by the operator and the router. */}}
{{- define "ttsfleet.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ttsfleet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Scheduling fields set in a component's values, as pod spec YAML (empty when none are). */}}
{{- define "ttsfleet.scheduling" -}}
{{- $fields := dict -}}
{{- range $key := list "priorityClassName" "nodeSelector" "tolerations" "affinity" -}}
{{- with index $ $key }}{{ $_ := set $fields $key . }}{{ end -}}
{{- end -}}
{{- with $fields }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* A ServiceAccount for a component; (dict ... "apiAccess" false) for one that never calls the API. */}}
{{- define "ttsfleet.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  {{- include "ttsfleet.metadata" . | nindent 2 }}
automountServiceAccountToken: {{ ternary .apiAccess true (hasKey . "apiAccess") }}
{{- end -}}

{{/* The router's address inside the cluster, as the gateway and the job workers dial it. */}}
{{- define "ttsfleet.routerAddress" -}}
{{- .Values.gateway.routerAddress | default (printf "%s.%s.svc:%d" (include "ttsfleet.componentName" (dict "root" . "component" "router")) .Release.Namespace (int .Values.router.service.port)) -}}
{{- end -}}

{{/* The Secret of the tokens the router accepts (router.auth), which must be named. */}}
{{- define "ttsfleet.routerAuthSecret" -}}
{{- required "router.auth.secretName: name the Secret holding the accepted bearer tokens" .Values.router.auth.secretName -}}
{{- end -}}

{{/* Flags shared by `ttsfleet gateway` and `ttsfleet worker`: the router, the job store, retries. */}}
{{- define "ttsfleet.jobArgs" -}}
- --router={{ include "ttsfleet.routerAddress" . }}
{{- if eq .Values.jobs.backend "redis" }}
- --backend={{ required "jobs.redisUrl: the Redis URL (redis://HOST:PORT/DB) for jobs.backend redis" .Values.jobs.redisUrl }}
{{- else }}
- --backend=sqlite:///var/lib/ttsfleet/jobs/jobs.db
{{- end }}
- --results=/var/lib/ttsfleet/jobs/results
- --lease-seconds={{ .Values.jobs.leaseSeconds }}
- --job-attempts={{ .Values.jobs.jobAttempts }}
{{- if .Values.router.tls.enabled }}
- --router-ca=/etc/ttsfleet/router-ca/ca.crt
{{- end }}
{{- if .Values.router.auth.enabled }}
- --token-file=/etc/ttsfleet/router-token/token
{{- end }}
{{- if .Values.jobs.callbackSecret.secretName }}
- --callback-secret-file=/etc/ttsfleet/callback-secret/secret
{{- end }}
- --retention-seconds={{ .Values.jobs.retentionSeconds }}
{{- end -}}

{{/* Mounts of the job store and of what reaching the router takes (its CA, a token). */}}
{{- define "ttsfleet.jobMounts" -}}
- name: tmp
  mountPath: /tmp
- name: jobs
  mountPath: /var/lib/ttsfleet/jobs
{{- if .Values.router.tls.enabled }}
- name: router-ca
  mountPath: /etc/ttsfleet/router-ca
  readOnly: true
{{- end }}
{{- if .Values.router.auth.enabled }}
- name: router-token
  mountPath: /etc/ttsfleet/router-token
  readOnly: true
{{- end }}
{{- if .Values.jobs.callbackSecret.secretName }}
- name: callback-secret
  mountPath: /etc/ttsfleet/callback-secret
  readOnly: true
{{- end }}
{{- end -}}

{{/* The volumes behind ttsfleet.jobMounts. The job store holds the SQLite file (sqlite) and finished audio. */}}
{{- define "ttsfleet.jobVolumes" -}}
- name: tmp
  emptyDir: {}
- name: jobs
  persistentVolumeClaim:
    claimName: {{ .Values.jobs.storage.existingClaim | default (include "ttsfleet.componentName" (dict "root" . "component" "jobs")) }}
{{- if .Values.router.tls.enabled }}
- name: router-ca
  secret:
    # The router's certificate Secret (cert-manager writes ca.crt beside tls.crt).
    secretName: {{ .Values.router.tls.secretName }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- if .Values.router.auth.enabled }}
{{- $_ := include "ttsfleet.routerAuthSecret" . }}
- name: router-token
  secret:
    secretName: {{ required "gateway.routerToken.secretName: the router requires a bearer token (router.auth.enabled); name a Secret holding one for the gateway and job workers" .Values.gateway.routerToken.secretName }}
    items:
      - key: {{ .Values.gateway.routerToken.key }}
        path: token
{{- end }}
{{- with .Values.jobs.callbackSecret }}
{{- if .secretName }}
- name: callback-secret
  secret:
    # The HMAC key that signs callbacks (X-TTSFleet-Signature; docs/jobs.md).
    secretName: {{ .secretName }}
    items:
      - key: {{ .key }}
        path: secret
{{- end }}
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget for a component: drains proceed one pod at a time. */}}
{{- define "ttsfleet.podDisruptionBudget" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  {{- include "ttsfleet.metadata" . | nindent 2 }}
spec:
  maxUnavailable: 1
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "ttsfleet.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* Mutual TLS with the inference pods: the Secret's name (required when on), its mount and volume. */}}
{{- define "ttsfleet.podTLSSecret" -}}
{{- required "podTLS.secretName: name the kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) the pods, the router and the operator share" .Values.podTLS.secretName -}}
{{- end -}}

{{- define "ttsfleet.podTLSMount" -}}
{{- if .Values.podTLS.enabled }}
- name: pod-tls
  mountPath: /etc/ttsfleet/pod-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "ttsfleet.podTLSVolume" -}}
{{- if .Values.podTLS.enabled }}
- name: pod-tls
  secret:
    secretName: {{ include "ttsfleet.podTLSSecret" . }}
{{- end }}
{{- end -}}
