{{/* Names and labels shared by every object. */}}
{{- define "calico-cpp.name" -}}
{{- printf "%s" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "calico-cpp.labels" -}}
app.kubernetes.io/name: calico-cpp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "calico-cpp.selector" -}}
app.kubernetes.io/name: calico-cpp
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "calico-cpp.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* The pool encapsulation a routing mode means: IPIP, VXLAN. */}}
{{- define "calico-cpp.ipip" -}}
{{- if eq .Values.routing.mode "IPIP" -}}Always{{- else if eq .Values.routing.mode "IPIPCrossSubnet" -}}CrossSubnet{{- else -}}Never{{- end -}}
{{- end -}}
{{- define "calico-cpp.vxlan" -}}
{{- if eq .Values.routing.mode "VXLAN" -}}Always{{- else if eq .Values.routing.mode "VXLANCrossSubnet" -}}CrossSubnet{{- else -}}Never{{- end -}}
{{- end -}}

{{/* The datastore environment every daemon reads (common/datastore/config.h). */}}
{{- define "calico-cpp.datastoreEnv" -}}
- name: NODENAME
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
- name: DATASTORE_TYPE
  valueFrom: {configMapKeyRef: {name: {{ include "calico-cpp.name" . }}-config, key: datastore_type}}
{{- if eq .Values.datastore.type "etcdv3" }}
- name: ETCD_ENDPOINTS
  valueFrom: {configMapKeyRef: {name: {{ include "calico-cpp.name" . }}-config, key: etcd_endpoints}}
{{- if .Values.datastore.etcd.tlsSecretName }}
- {name: ETCD_CA_CERT_FILE, value: /etc/calico/etcd-tls/ca.crt}
- {name: ETCD_CERT_FILE, value: /etc/calico/etcd-tls/tls.crt}
- {name: ETCD_KEY_FILE, value: /etc/calico/etcd-tls/tls.key}
{{- end }}
{{- if .Values.datastore.etcd.username }}
- {name: ETCD_USERNAME, value: {{ .Values.datastore.etcd.username | quote }}}
- name: ETCD_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.datastore.etcd.passwordSecret.name | quote }}, key: {{ .Values.datastore.etcd.passwordSecret.key | quote }}}}
{{- end }}
{{- else }}
- {name: CALICO_DATASTORE_PATH, value: {{ .Values.datastore.embeddedPath | quote }}}
{{- end }}
{{- end -}}

{{/* Volume mounts every daemon needs: its sockets, state, and the etcd client certificates. */}}
{{- define "calico-cpp.commonMounts" -}}
- {name: var-run-calico, mountPath: /var/run/calico}
- {name: var-lib-calico, mountPath: /var/lib/calico}
{{- if and (eq .Values.datastore.type "etcdv3") .Values.datastore.etcd.tlsSecretName }}
- {name: etcd-tls, mountPath: /etc/calico/etcd-tls, readOnly: true}
{{- end }}
{{- end -}}

{{/* Failsafe ports as felixd's flag wants them: tcp:22,udp:68 (none for an empty list). */}}
{{- define "calico-cpp.failsafePorts" -}}
{{- $out := list -}}
{{- range . -}}{{- $out = append $out (printf "%s:%d" (lower .protocol) (int .port)) -}}{{- end -}}
{{- if $out -}}{{ join "," $out }}{{- else -}}none{{- end -}}
{{- end -}}
