{{/*
Most helpers take a context dict {"root": <top-level context>, "values": <memifd values>},
so that a parent chart can render memifd's sidecar from its own pod template with
.Values.memifd (see memifd.sidecar at the end of this file).
*/}}

{{/* The chart name: nameOverride or "memifd" (a literal, so names agree in a parent chart). */}}
{{- define "memifd.name" -}}
{{- default "memifd" .values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: <release>-memifd unless the release name holds it. */}}
{{- define "memifd.fullname" -}}
{{- if .values.fullnameOverride }}
{{- .values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "memifd.name" . }}
{{- if contains $name .root.Release.Name }}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A resource name: the prefix cut so that "-<suffix>" still fits 63 characters. */}}
{{- define "memifd.suffixed" -}}
{{- $prefix := include "memifd.fullname" .ctx | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $prefix .suffix }}
{{- end }}

{{- define "memifd.tokenSecretName" -}}
{{- if .values.auth.existingSecret }}
{{- .values.auth.existingSecret }}
{{- else }}
{{- include "memifd.suffixed" (dict "ctx" . "suffix" "token") }}
{{- end }}
{{- end }}

{{- define "memifd.configName" -}}
{{- include "memifd.suffixed" (dict "ctx" . "suffix" "config") }}
{{- end }}

{{- define "memifd.serviceAccountName" -}}
{{- if .values.serviceAccount.create }}
{{- default (include "memifd.fullname" .) .values.serviceAccount.name }}
{{- else }}
{{- default "default" .values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels that select memifd's pods. */}}
{{- define "memifd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memifd.name" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "memifd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "memifd.selectorLabels" . }}
app.kubernetes.io/version: {{ .values.image.tag | quote }}
app.kubernetes.io/component: memif
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/*
Labels of the `helm test` pod: not memifd's selector labels, so neither the Service nor
the Deployment takes it for one of memifd's pods.
*/}}
{{- define "memifd.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "memifd.name" . }}-test
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* "true" when any interface carries a secret: the config file then goes in a Secret. */}}
{{- define "memifd.configHasSecrets" -}}
{{- $found := false }}
{{- range .values.interfaces }}
{{- if .secret }}{{ $found = true }}{{ end }}
{{- end }}
{{- $found }}
{{- end }}

{{/* socketDirs plus the mount path of dataPlaneSocketDir, as a JSON list. */}}
{{- define "memifd.socketDirs" -}}
{{- $dirs := .values.socketDirs | default list }}
{{- $dataPlane := include "memifd.dataPlaneMountPath" . }}
{{- if and $dataPlane (not (has $dataPlane $dirs)) }}{{ $dirs = append $dirs $dataPlane }}{{ end }}
{{- toJson $dirs }}
{{- end }}

{{/* Where memifd sees dataPlaneSocketDir.hostPath; empty when it is not mounted. */}}
{{- define "memifd.dataPlaneMountPath" -}}
{{- with .values.dataPlaneSocketDir }}{{ if .hostPath }}{{ .mountPath | default .hostPath }}{{ end }}{{ end }}
{{- end }}

{{/*
The config file memifd reads at start (MEMIFD_CONFIG). The pod's fsGroup joins the peer
groups server interfaces accept: every container of the pod has it as a supplementary group.
*/}}
{{- define "memifd.configFile" -}}
{{- include "memifd.validateInterfaces" . }}
{{- $gids := list }}
{{- range .values.defaultAllowedGids }}{{ $gids = append $gids (int64 .) }}{{ end }}
{{- with (.values.podSecurityContext | default dict).fsGroup }}{{ $gids = append $gids (int64 .) }}{{ end }}
{{- $config := dict "interfaces" (.values.interfaces | default list) }}
{{- $_ := set $config "socket_dirs" (include "memifd.socketDirs" . | fromJsonArray) }}
{{- $_ = set $config "default_allowed_uids" (.values.defaultAllowedUids | default list) }}
{{- $_ = set $config "default_allowed_gids" (uniq $gids) }}
{{- $config | toYaml }}
{{- end }}

{{/*
Checks of interfaces that a JSON schema cannot express; InterfaceSpec and memifd's start-up
make the same checks, so a value rejected here would also stop memifd from starting.
*/}}
{{- define "memifd.validateInterfaces" -}}
{{- $roots := prepend (include "memifd.socketDirs" . | fromJsonArray) .values.socketDir.path }}
{{- $declared := dict }}
{{- range .values.interfaces }}{{ $_ := set $declared .name true }}{{ end }}
{{- $names := dict }}
{{- $places := dict }}
{{- $socketDir := .values.socketDir.path }}
{{- range $i, $iface := .values.interfaces }}
{{- $where := printf "interfaces[%d] (%s)" $i $iface.name }}
{{- if hasKey $names $iface.name }}
{{- fail (printf "%s: name %q is used by more than one interface" $where $iface.name) }}
{{- end }}
{{- $_ := set $names $iface.name true }}
{{- /* memifd tells interfaces apart by socket, role and id; defaults as in InterfaceSpec */}}
{{- $socket := $iface.socket | default "memif.sock" }}
{{- if not (hasPrefix "@" $socket) }}
{{- $socket = clean (ternary $socket (printf "%s/%s" $socketDir $socket) (hasPrefix "/" $socket)) }}
{{- end }}
{{- $role := lower ($iface.role | default "server") }}
{{- $role = get (dict "master" "server" "slave" "client") $role | default $role }}
{{- $place := printf "socket %s, role %s and id %d" $socket $role (int64 ($iface.id | default 0)) }}
{{- if hasKey $places $place }}
{{- fail (printf "%s and %s both use %s; give one of them another socket or id" (get $places $place) $where $place) }}
{{- end }}
{{- $_ := set $places $place $where }}
{{- if and $iface.xconnect_to (eq $iface.xconnect_to $iface.name) }}
{{- fail (printf "%s: xconnect_to: an interface cannot be cross-connected to itself" $where) }}
{{- end }}
{{- if and $iface.xconnect_to (not (hasKey $declared $iface.xconnect_to)) }}
{{- fail (printf "%s: xconnect_to: %q is not one of the declared interfaces" $where $iface.xconnect_to) }}
{{- end }}
{{- $socket := $iface.socket | default "memif.sock" }}
{{- if and (not (hasPrefix "@" $socket)) (has ".." (splitList "/" $socket)) }}
{{- fail (printf "%s: socket: '..' is not allowed; name a file in an allowed socket directory" $where) }}
{{- end }}
{{- if hasPrefix "/" $socket }}
{{- $inside := false }}
{{- range $roots }}{{ if hasPrefix (printf "%s/" (trimSuffix "/" .)) $socket }}{{ $inside = true }}{{ end }}{{ end }}
{{- if not $inside }}
{{- fail (printf "%s: socket: %s is outside the socket directories (%s); add its directory to socketDirs" $where $socket (join ", " $roots)) }}
{{- end }}
{{- end }}
{{- if gt (len ($iface.secret | default "")) 24 }}
{{- fail (printf "%s: secret must be at most 24 bytes in UTF-8, got %d" $where (len $iface.secret)) }}
{{- end }}
{{- $memory := $iface.memory | default dict }}
{{- $pairs := int64 (dig "num_queue_pairs" 1 $memory) }}
{{- $buffer := int64 (dig "packet_buffer_size" 2048 $memory) }}
{{- $ring := int64 1 }}
{{- range until (int (dig "log2_ring_size" 10 $memory)) }}{{ $ring = mul $ring 2 }}{{ end }}
{{- $size := mul 2 $pairs $ring $buffer }}
{{- if gt $size 4294967296 }}
{{- fail (printf "%s: memory: num_queue_pairs x 2 x 2^log2_ring_size x packet_buffer_size = %d bytes exceeds the limit of 4294967296 (4 GiB, descriptor offsets are 32-bit)" $where $size) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Service's names in cluster DNS: the REST API answers requests sent to them. */}}
{{- define "memifd.serviceHosts" -}}
{{- $name := include "memifd.fullname" . }}
{{- $ns := .root.Release.Namespace }}
{{- printf "%s,%s.%s,%s.%s.svc,%s.%s.svc.cluster.local" $name $name $ns $name $ns $name $ns }}
{{- end }}

{{/* URL scheme of memifd's REST API. */}}
{{- define "memifd.scheme" -}}
{{- if .values.tls.secretName }}https{{ else }}http{{ end }}
{{- end }}

{{/* Where the token and the TLS files are mounted. */}}
{{- define "memifd.tokenDir" -}}/var/run/secrets/memifd{{- end }}
{{- define "memifd.tlsDir" -}}/var/run/secrets/memifd-tls{{- end }}
{{- define "memifd.configDir" -}}/etc/memifd{{- end }}

{{/* The memifd container, as one list item. */}}
{{- define "memifd.container" -}}
{{- $v := .values -}}
{{- if and $v.nativeSidecar (not (semverCompare ">=1.29.0-0" .root.Capabilities.KubeVersion.Version)) -}}
{{- fail (printf "nativeSidecar: native sidecar containers need Kubernetes 1.29 or later, this is %s" .root.Capabilities.KubeVersion.Version) -}}
{{- end -}}
- name: memifd
  image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["serve"]
  {{- if $v.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: MEMIFD_HTTP_ADDR
      value: "{{ $v.listenAddress }}:{{ $v.ports.http }}"
    - name: MEMIFD_GRPC_ADDR
      value: "{{ $v.listenAddress }}:{{ $v.ports.grpc }}"
    - name: MEMIFD_SOCKET_DIR
      value: {{ $v.socketDir.path | quote }}
    - name: MEMIFD_TOKEN_FILE
      value: "{{ include "memifd.tokenDir" . }}/token"
    - name: MEMIFD_CONFIG
      value: "{{ include "memifd.configDir" . }}/config.yaml"
    - name: MEMIFD_LOG_FORMAT
      value: {{ $v.logFormat | quote }}
    - name: MEMIFD_LOG_LEVEL
      value: {{ $v.logLevel | quote }}
    {{- if $v.accessLog }}
    - name: MEMIFD_ACCESS_LOG
      value: "true"
    {{- end }}
    - name: MEMIFD_ALLOWED_HOSTS
      value: {{ include "memifd.serviceHosts" . | quote }}
    {{- if $v.tls.secretName }}
    - name: MEMIFD_TLS_CERT
      value: "{{ include "memifd.tlsDir" . }}/tls.crt"
    - name: MEMIFD_TLS_KEY
      value: "{{ include "memifd.tlsDir" . }}/tls.key"
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: memifd-http
      containerPort: {{ $v.ports.http }}
      protocol: TCP
    - name: memifd-grpc
      containerPort: {{ $v.ports.grpc }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: memifd-http
      scheme: {{ include "memifd.scheme" . | upper }}
    {{- toYaml $v.startupProbe | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: memifd-http
      scheme: {{ include "memifd.scheme" . | upper }}
    {{- toYaml $v.livenessProbe | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: memifd-http
      scheme: {{ include "memifd.scheme" . | upper }}
    {{- toYaml $v.readinessProbe | nindent 4 }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: {{ $v.socketDir.volumeName }}
      mountPath: {{ $v.socketDir.path }}
    - name: memifd-config
      mountPath: {{ include "memifd.configDir" . }}
      readOnly: true
    - name: memifd-token
      mountPath: {{ include "memifd.tokenDir" . }}
      readOnly: true
    {{- if $v.tls.secretName }}
    - name: memifd-tls
      mountPath: {{ include "memifd.tlsDir" . }}
      readOnly: true
    {{- end }}
    - name: memifd-tmp
      mountPath: /tmp
    {{- with include "memifd.dataPlaneMountPath" . }}
    - name: data-plane-sockets
      mountPath: {{ . }}
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The volumes memifd's container needs, as list items. */}}
{{- define "memifd.volumes" -}}
{{- $v := .values -}}
- name: {{ $v.socketDir.volumeName }}
  emptyDir:
    medium: Memory
    {{- with $v.socketDir.sizeLimit }}
    sizeLimit: {{ . }}
    {{- end }}
- name: memifd-config
  {{- if eq (include "memifd.configHasSecrets" .) "true" }}
  secret:
    secretName: {{ include "memifd.configName" . }}
  {{- else }}
  configMap:
    name: {{ include "memifd.configName" . }}
  {{- end }}
- name: memifd-token
  secret:
    secretName: {{ include "memifd.tokenSecretName" . }}
    items:
      - key: {{ $v.auth.secretKey }}
        path: token
{{- if $v.tls.secretName }}
- name: memifd-tls
  secret:
    secretName: {{ $v.tls.secretName }}
{{- end }}
- name: memifd-tmp
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
{{- with $v.dataPlaneSocketDir }}
{{- if .hostPath }}
- name: data-plane-sockets
  hostPath:
    path: {{ .hostPath }}
    type: {{ .type | default "Directory" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment of an application container talking to memifd in the same pod; memifctl
reads MEMIFD_GRPC_ADDR and MEMIFD_TOKEN as they are.
*/}}
{{- define "memifd.appEnv" -}}
{{- $v := .values -}}
- name: MEMIF_SOCKET_DIR
  value: {{ $v.socketDir.path | quote }}
- name: MEMIFD_URL
  value: "{{ include "memifd.scheme" . }}://127.0.0.1:{{ $v.ports.http }}"
- name: MEMIFD_GRPC_ADDR
  value: "127.0.0.1:{{ $v.ports.grpc }}"
{{- if .apiToken }}
- name: MEMIFD_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "memifd.tokenSecretName" . }}
      key: {{ $v.auth.secretKey }}
{{- end }}
{{- end }}

{{/* Volume mounts of an application container talking to memifd in the same pod. */}}
{{- define "memifd.appVolumeMounts" -}}
{{- $v := .values -}}
- name: {{ $v.socketDir.volumeName }}
  mountPath: {{ $v.socketDir.path }}
{{- end }}

{{/* Pod annotation that restarts pods when the interface config changes. */}}
{{- define "memifd.checksumAnnotation" -}}
checksum/memifd-config: {{ include "memifd.configFile" . | sha256sum }}
{{- end }}

{{/*
Public templates for a chart that has memifd as a dependency (named or aliased "memifd",
with memifd.deployment.enabled=false) and adds memifd to its own pod. Each takes the
including chart's top-level context:

  containers:            {{- include "memifd.sidecar" . | nindent 8 }}
  volumes:               {{- include "memifd.sidecarVolumes" . | nindent 8 }}
  app volumeMounts:      {{- include "memifd.sidecarAppVolumeMounts" . | nindent 12 }}
  app env:               {{- include "memifd.sidecarAppEnv" . | nindent 12 }}
  pod annotations:       {{- include "memifd.sidecarAnnotations" . | nindent 8 }}
*/}}
{{- define "memifd.sidecarContext" -}}
{{- if not (and (kindIs "map" .Values.memifd) (hasKey (.Values.memifd | default dict) "socketDir")) }}
{{- fail "memifd.sidecar: the including chart needs the memifd chart as a dependency named (or aliased) \"memifd\"" }}
{{- end }}
{{- end }}

{{- define "memifd.sidecar" -}}
{{- include "memifd.sidecarContext" . }}
{{- include "memifd.container" (dict "root" . "values" .Values.memifd) }}
{{- end }}

{{- define "memifd.sidecarVolumes" -}}
{{- include "memifd.sidecarContext" . }}
{{- include "memifd.volumes" (dict "root" . "values" .Values.memifd) }}
{{- end }}

{{- define "memifd.sidecarAppVolumeMounts" -}}
{{- include "memifd.sidecarContext" . }}
{{- include "memifd.appVolumeMounts" (dict "root" . "values" .Values.memifd) }}
{{- end }}

{{- define "memifd.sidecarAppEnv" -}}
{{- include "memifd.sidecarContext" . }}
{{- include "memifd.appEnv" (dict "root" . "values" .Values.memifd "apiToken" true) }}
{{- end }}

{{- define "memifd.sidecarAnnotations" -}}
{{- include "memifd.sidecarContext" . }}
{{- include "memifd.checksumAnnotation" (dict "root" . "values" .Values.memifd) }}
{{- end }}
