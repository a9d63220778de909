{{/* The chart's name, overridable. */}}
{{- define "mmo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects. A release named like the chart is not repeated
("mux-master-operator", not "mux-master-operator-mux-master-operator").
*/}}
{{- define "mmo.fullname" -}}
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

{{- define "mmo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What selects the operator's pods: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "mmo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mmo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The recommended labels, on every object. */}}
{{- define "mmo.labels" -}}
helm.sh/chart: {{ include "mmo.chart" . }}
{{ include "mmo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: mux-master-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mmo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mmo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest]; the tag defaults to the chart's appVersion. */}}
{{- define "mmo.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- if .Values.image.tag }}
{{- printf "%s:%s@%s" .Values.image.repository .Values.image.tag .Values.image.digest }}
{{- else }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- end }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* "true" when the replicas elect a leader: asked for, or auto with more than one replica. */}}
{{- define "mmo.leaderElection" -}}
{{- $enabled := .Values.leaderElection.enabled }}
{{- if eq (toString $enabled) "auto" }}
{{- if gt (int .Values.replicaCount) 1 }}true{{ else }}false{{ end }}
{{- else if $enabled }}true{{ else }}false{{ end }}
{{- end }}

{{/* The operator's ServiceAccount, as a binding's subjects. */}}
{{- define "mmo.subjects" -}}
- kind: ServiceAccount
  name: {{ include "mmo.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{- define "mmo.leaseName" -}}
{{- default (include "mmo.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The operator's permissions on the namespaces it reconciles: what the controller reads and writes.
- MasterExports: it watches them, adds and removes its finalizer (patch), writes their status.
  No create and no delete: people and GitOps own them.
- masterexports/finalizers: so that the URL Secret's ownerReference may block its owner's
  deletion where the OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift).
- Secrets: reads the credentials Secret (get); server-side-applies the URL Secret (create, patch).
  No list or watch, no delete: the URL Secret goes with its owner, through garbage collection.
- Events: the event recorder creates them and patches a series' count, in events.k8s.io; the core
  group too, for tools and clusters that read those.
- Jobs: the copy Jobs it creates, watches and deletes (an unfinished one, when a newer copy
  replaces it); Pods: it lists a finished Job's pods to read the copier's report from their
  termination message, and reads a running copy pod's log tail (pods/log get) for its progress.
*/}}
{{- define "mmo.namespacedRules" -}}
# create: a MasterExportSet's children.
- apiGroups: [masterexport.io]
  resources: [masterexports]
  verbs: [get, list, watch, create, patch]
- apiGroups: [masterexport.io]
  resources: [masterexports/status]
  verbs: [patch]
- apiGroups: [masterexport.io]
  resources: [masterexports/finalizers]
  verbs: [update]
- apiGroups: [masterexport.io]
  resources: [masterexportsets]
  verbs: [get, list, watch]
- apiGroups: [masterexport.io]
  resources: [masterexportsets/status]
  verbs: [patch]
# The children's owner references block their set's deletion until they are gone.
- apiGroups: [masterexport.io]
  resources: [masterexportsets/finalizers]
  verbs: [update]
# list/watch: the URL Secrets it writes are watched (by label, metadata only) so that one deleted or
# edited by hand is restored at once. RBAC cannot be narrowed by label: this allows listing every
# Secret of the namespace.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- end }}
