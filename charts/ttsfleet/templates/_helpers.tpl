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

{{/* A ServiceAccount for a component. */}}
{{- define "ttsfleet.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  {{- include "ttsfleet.metadata" . | nindent 2 }}
automountServiceAccountToken: true
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
