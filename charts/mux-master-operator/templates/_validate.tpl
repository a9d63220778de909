{{/*
Rules between values, which values.schema.json cannot explain well: each fails the install with a
message that says what to change. Included by deployment.yaml, which every install renders.
*/}}
{{- define "mmo.validate" -}}
{{- if and (eq .Values.rbac.mode "namespaced") (empty .Values.watchNamespaces) }}
{{- fail "rbac.mode=namespaced needs watchNamespaces: list the namespaces whose MasterExports the operator reconciles (it gets Roles there and nothing cluster-wide), or use rbac.mode=cluster" }}
{{- end }}
{{- if and .Values.webhooks.enabled (empty .Values.webhooks.signingSecretRef.name) }}
{{- fail "webhooks.enabled=true needs webhooks.signingSecretRef.name: the Secret (in the release namespace) with the Mux webhook signing secret under key webhooks.signingSecretRef.key" }}
{{- end }}
{{- if and .Values.webhooks.ingress.enabled (not .Values.webhooks.enabled) }}
{{- fail "webhooks.ingress.enabled=true needs webhooks.enabled=true: the Ingress routes to the webhook endpoint" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (eq (include "mmo.leaderElection" .) "false") }}
{{- fail "replicaCount > 1 needs leader election (leaderElection.enabled: auto or true): without it every replica would call Mux for the same resources" }}
{{- end }}
{{- if and (hasKey .Values.podDisruptionBudget "minAvailable") (hasKey .Values.podDisruptionBudget "maxUnavailable") }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- end }}
