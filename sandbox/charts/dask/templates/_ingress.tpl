{{/*
An Ingress in front of one of the chart's Services. Call with
(dict "root" $ "ingress" <ingress values> "service" <Service name>
"port" <Service port> "tlsSecret" <default TLS secret>). Only
networking.k8s.io/v1 is rendered: every Kubernetes the sandbox runs serves it.
*/}}
{{- define "dask.ingress" -}}
{{- $ingress := .ingress -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ .service }}
  labels:
    app: {{ .service }}
    chart: "{{ .root.Chart.Name }}-{{ .root.Chart.Version }}"
    release: {{ .root.Release.Name | quote }}
    heritage: {{ .root.Release.Service | quote }}
  {{- with $ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $ingress.ingressClassName }}
  ingressClassName: {{ . | quote }}
  {{- end }}
  {{- if $ingress.tls }}
  tls:
    - hosts:
        - {{ $ingress.hostname | quote }}
      secretName: {{ $ingress.secretName | default .tlsSecret }}
  {{- end }}
  rules:
    - http:
        paths:
          - path: /
            pathType: {{ $ingress.pathType }}
            backend:
              service:
                name: {{ .service }}
                port:
                  number: {{ .port }}
      {{- with $ingress.hostname }}
      host: {{ . }}
      {{- end }}
{{- end -}}
