{{/* The namespace of the TTSPools the MCP server reads: its own setting, else the router's. */}}
{{- define "ttsfleet.mcpNamespace" -}}
{{- .Values.mcp.poolNamespace | default (include "ttsfleet.routerNamespace" .) -}}
{{- end -}}
