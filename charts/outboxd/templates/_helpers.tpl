{{/*
Helpers of the outboxd chart.

Public (for an application chart that runs outboxd as a sidecar; pass the outboxd subchart's
scope, `.Subcharts.outboxd`):
  outboxd.sidecarContainer              the container (a YAML list item, starts with "- name:")
  outboxd.podAnnotations                checksum annotations that restart pods on config change
  outboxd.terminationGracePeriodSeconds shutdown grace + terminationGraceExtraSeconds
  outboxd.serviceAccountName            the chart's ServiceAccount
Everything else is internal.
*/}}

{{- define "outboxd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "outboxd.fullname" -}}
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

{{- define "outboxd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "outboxd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outboxd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "outboxd.labels" -}}
helm.sh/chart: {{ include "outboxd.chart" . }}
{{ include "outboxd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: outboxd
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "outboxd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "outboxd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "outboxd.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Name of the Secret the chart creates from values (dev) or generates the token into. */}}
{{- define "outboxd.secretName" -}}
{{- include "outboxd.fullname" . }}
{{- end }}

{{- define "outboxd.createsSecret" -}}
{{- if or (and (not .Values.database.existingSecret) .Values.database.url) (and (not .Values.adminToken.existingSecret) (or .Values.adminToken.value .Values.adminToken.generate)) }}true{{ end }}
{{- end }}

{{- define "outboxd.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else if .Values.database.url }}
{{- include "outboxd.secretName" . }}
{{- end }}
{{- end }}

{{- define "outboxd.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey | default "DATABASE_URL" }}
{{- else }}DATABASE_URL{{ end }}
{{- end }}

{{- define "outboxd.adminTokenSecretName" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecret }}
{{- else if or .Values.adminToken.value .Values.adminToken.generate }}
{{- include "outboxd.secretName" . }}
{{- end }}
{{- end }}

{{- define "outboxd.adminTokenSecretKey" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecretKey | default "OUTBOXD_ADMIN_TOKEN" }}
{{- else }}OUTBOXD_ADMIN_TOKEN{{ end }}
{{- end }}

{{/*
config.listen, parsed like Rust's SocketAddr: "a.b.c.d:port" or "[v6]:port".
*/}}
{{- define "outboxd.listenPort" -}}
{{- $listen := toString .Values.config.listen | default "127.0.0.1:9090" }}
{{- if not (regexMatch "^(\\[[0-9A-Fa-f:.]+\\]|[0-9]{1,3}(\\.[0-9]{1,3}){3}):[0-9]{1,5}$" $listen) }}
{{- fail (printf "config.listen (OUTBOXD_LISTEN) = %q is not an IP socket address such as 0.0.0.0:9090, 127.0.0.1:9090 or [::]:9090 (host names are not accepted)" $listen) }}
{{- end }}
{{- regexFind "[0-9]+$" $listen }}
{{- end }}

{{/* "true" when config.listen is a loopback address (then no admin token is needed, and nothing outside the pod can reach the port). */}}
{{- define "outboxd.listenIsLoopback" -}}
{{- $listen := toString .Values.config.listen | default "127.0.0.1:9090" }}
{{- if or (hasPrefix "127." $listen) (hasPrefix "[::1]:" $listen) (hasPrefix "[0:0:0:0:0:0:0:1]:" $listen) }}true{{ end }}
{{- end }}

{{/*
config.inboundListen (OUTBOXD_INBOUND_LISTEN), parsed like config.listen: its port, or empty when
the inbound listener is off.
*/}}
{{- define "outboxd.inboundPort" -}}
{{- $listen := include "outboxd.envString" .Values.config.inboundListen }}
{{- if $listen }}
{{- if not (regexMatch "^(\\[[0-9A-Fa-f:.]+\\]|[0-9]{1,3}(\\.[0-9]{1,3}){3}):[0-9]{1,5}$" $listen) }}
{{- fail (printf "config.inboundListen (OUTBOXD_INBOUND_LISTEN) = %q is not an IP socket address such as 0.0.0.0:8080 (host names are not accepted)" $listen) }}
{{- end }}
{{- regexFind "[0-9]+$" $listen }}
{{- end }}
{{- end }}

{{/* "true" when the inbound listener is on and reachable from outside the pod (not loopback). */}}
{{- define "outboxd.inboundReachable" -}}
{{- $listen := include "outboxd.envString" .Values.config.inboundListen }}
{{- if and $listen (not (or (hasPrefix "127." $listen) (hasPrefix "[::1]:" $listen) (hasPrefix "[0:0:0:0:0:0:0:1]:" $listen))) }}true{{ end }}
{{- end }}

{{/*
Seconds of a humantime duration ("30s", "2m", "1h 30m", "500ms"), rounded up; fails with the
setting's name on anything outboxd would refuse. Call with (list "<setting name>" <value>).
*/}}
{{- define "outboxd.durationSeconds" -}}
{{- $name := index . 0 }}
{{- $s := index . 1 | toString | trim }}
{{- if not (regexMatch "^([0-9]+ *[a-zA-Zµ]+ *)+$" $s) }}
{{- fail (printf "%s = %q is not a duration (examples: 30s, 2m, 1h 30m, 7d)" $name $s) }}
{{- end }}
{{- $ms := dict "ms" 1 "msec" 1 "millis" 1 "s" 1000 "sec" 1000 "secs" 1000 "second" 1000 "seconds" 1000 "m" 60000 "min" 60000 "mins" 60000 "minute" 60000 "minutes" 60000 "h" 3600000 "hr" 3600000 "hrs" 3600000 "hour" 3600000 "hours" 3600000 "d" 86400000 "day" 86400000 "days" 86400000 "w" 604800000 "week" 604800000 "weeks" 604800000 "M" 2630016000 "month" 2630016000 "months" 2630016000 "y" 31557600000 "year" 31557600000 "years" 31557600000 }}
{{- $sub := dict "ns" 1000000 "nsec" 1000000 "nanos" 1000000 "us" 1000 "usec" 1000 "µs" 1000 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+ *[a-zA-Zµ]+" $s -1 }}
{{- $n := regexFind "^[0-9]+" . | int64 }}
{{- $unit := regexReplaceAll "^[0-9]+ *" . "" }}
{{- if hasKey $ms $unit }}
{{- $total = add $total (mul $n (get $ms $unit)) }}
{{- else if hasKey $sub $unit }}
{{- $d := get $sub $unit }}
{{- $total = add $total (div (add $n (sub $d 1)) $d) }}
{{- else }}
{{- fail (printf "%s = %q: unknown unit %q (use ms, s, m, h, d, w)" $name $s $unit) }}
{{- end }}
{{- end }}
{{- div (add $total 999) 1000 }}
{{- end }}

{{- define "outboxd.terminationGracePeriodSeconds" -}}
{{- $grace := include "outboxd.durationSeconds" (list "config.shutdownGrace (OUTBOXD_SHUTDOWN_GRACE)" (.Values.config.shutdownGrace | default "30s")) | int64 }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $grace (.Values.terminationGraceExtraSeconds | default 10 | int64) }}
{{- else }}
{{- $explicit := .Values.terminationGracePeriodSeconds | int64 }}
{{- if le $explicit $grace }}
{{- fail (printf "terminationGracePeriodSeconds = %d must exceed config.shutdownGrace (%d s), or the kubelet kills outboxd before it has handed back its in-flight deliveries" $explicit $grace) }}
{{- end }}
{{- $explicit }}
{{- end }}
{{- end }}

{{/* A value as an environment string: whole numbers without an exponent. */}}
{{- define "outboxd.envString" -}}
{{- if kindIs "invalid" . }}
{{- else if kindIs "float64" . }}
{{- if eq . (float64 (int64 .)) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* config.<key> → environment variable. */}}
{{- define "outboxd.configEnvNames" -}}
listen: OUTBOXD_LISTEN
allowNetworks: OUTBOXD_ALLOW_NETWORKS
retrySchedule: OUTBOXD_RETRY_SCHEDULE
retryJitter: OUTBOXD_RETRY_JITTER
maxAge: OUTBOXD_MAX_AGE
retryAfterMax: OUTBOXD_RETRY_AFTER_MAX
requestTimeout: OUTBOXD_REQUEST_TIMEOUT
connectTimeout: OUTBOXD_CONNECT_TIMEOUT
maxPayloadBytes: OUTBOXD_MAX_PAYLOAD_BYTES
concurrency: OUTBOXD_CONCURRENCY
dbPoolSize: OUTBOXD_DB_POOL_SIZE
pollInterval: OUTBOXD_POLL_INTERVAL
lease: OUTBOXD_LEASE
routeBatch: OUTBOXD_ROUTE_BATCH
claimBatch: OUTBOXD_CLAIM_BATCH
circuitFailures: OUTBOXD_CIRCUIT_FAILURES
circuitCooldown: OUTBOXD_CIRCUIT_COOLDOWN
shutdownGrace: OUTBOXD_SHUTDOWN_GRACE
retentionSucceeded: OUTBOXD_RETENTION_SUCCEEDED
retentionDead: OUTBOXD_RETENTION_DEAD
retentionInterval: OUTBOXD_RETENTION_INTERVAL
migrate: OUTBOXD_MIGRATE
replicaId: OUTBOXD_REPLICA_ID
logFormat: OUTBOXD_LOG_FORMAT
log: OUTBOXD_LOG
metricsEndpointLabels: OUTBOXD_METRICS_ENDPOINT_LABELS
statsInterval: OUTBOXD_STATS_INTERVAL
strictEventTypes: OUTBOXD_STRICT_EVENT_TYPES
pooler: OUTBOXD_POOLER
startupTimeout: OUTBOXD_STARTUP_TIMEOUT
console: OUTBOXD_CONSOLE
consoleSessionTtl: OUTBOXD_CONSOLE_SESSION_TTL
consoleFrameAncestors: OUTBOXD_CONSOLE_FRAME_ANCESTORS
portalFrameAncestors: OUTBOXD_PORTAL_FRAME_ANCESTORS
portalUrl: OUTBOXD_PORTAL_URL
inboundListen: OUTBOXD_INBOUND_LISTEN
inboundRetention: OUTBOXD_INBOUND_RETENTION
inboundReadTimeout: OUTBOXD_INBOUND_READ_TIMEOUT
inboundMaxConnections: OUTBOXD_INBOUND_MAX_CONNECTIONS
inboundWriters: OUTBOXD_INBOUND_WRITERS
inboundMaxBuffered: OUTBOXD_INBOUND_MAX_BUFFERED
egressProxy: OUTBOXD_EGRESS_PROXY
noProxy: NO_PROXY
egressCaFile: OUTBOXD_EGRESS_CA_FILE
clientCertDir: OUTBOXD_CLIENT_CERT_DIR
{{- end }}

{{/*
PUBLIC. The pod volumes the outboxd container mounts (list items): the extra CAs of
egress.caConfigMap and the client certificates of clientCertificates. Empty when neither is
set. In sidecar mode, add them to your pod's volumes:

  volumes:
    {{- include "outboxd.volumes" .Subcharts.outboxd | nindent 4 }}
*/}}
{{- define "outboxd.volumes" -}}
{{- if .Values.egress.caConfigMap.name }}
- name: outboxd-egress-ca
  configMap:
    name: {{ .Values.egress.caConfigMap.name }}
    items:
      - key: {{ .Values.egress.caConfigMap.key }}
        path: {{ .Values.egress.caConfigMap.key }}
{{- end }}
{{- with .Values.clientCertificates }}
- name: outboxd-client-certs
  projected:
    sources:
      {{- range . }}
      - secret:
          name: {{ .secretName }}
          items:
            - key: tls.crt
              path: {{ .name }}.crt
            - key: tls.key
              path: {{ .name }}.key
      {{- end }}
{{- end }}
{{- end }}

{{/* The ConfigMap's data: every non-empty config value, sorted by variable name. */}}
{{- define "outboxd.configData" -}}
{{- $names := include "outboxd.configEnvNames" . | fromYaml }}
{{- $env := dict }}
{{- range $key, $value := .Values.config }}
{{- if not (hasKey $names $key) }}
{{- fail (printf "config.%s is not a known outboxd setting (known: %s); pass other variables with extraEnv" $key (keys $names | sortAlpha | join ", ")) }}
{{- end }}
{{- if not (or (kindIs "invalid" $value) (eq (toString $value) "")) }}
{{- $_ := set $env (get $names $key) (include "outboxd.envString" $value) }}
{{- end }}
{{- end }}
{{- range $name := keys $env | sortAlpha }}
{{ $name }}: {{ get $env $name | quote }}
{{- end }}
{{- end }}

{{/*
Checks that stop rendering with a message instead of producing pods that crash-loop.
Included by every template that renders a pod or the shared objects.
*/}}
{{- define "outboxd.validate" -}}
{{- if not (has .Values.mode (list "deployment" "sidecar")) }}
{{- fail (printf "mode = %q: use \"deployment\" (its own Deployment) or \"sidecar\" (a container in your application's pod)" .Values.mode) }}
{{- end }}
{{- $_ := include "outboxd.listenPort" . }}
{{- $_ = required "database: set database.existingSecret (a Secret holding DATABASE_URL, key database.existingSecretKey), or for development database.url" (include "outboxd.databaseSecretName" .) }}
{{- if not (include "outboxd.listenIsLoopback" .) }}
{{- $_ = required (printf "adminToken: config.listen (OUTBOXD_LISTEN) = %s is beyond loopback, and outboxd refuses to listen there without an admin token. Set adminToken.existingSecret (a Secret with key adminToken.existingSecretKey, value at least 16 characters), or adminToken.generate=true, or for development adminToken.value; or listen on 127.0.0.1 (then no probes, Service or ServiceMonitor)" (toString .Values.config.listen)) (include "outboxd.adminTokenSecretName" .) }}
{{- end }}
{{- if and (not .Values.adminToken.existingSecret) .Values.adminToken.value (lt (len (toString .Values.adminToken.value)) 16) }}
{{- fail "adminToken.value must be at least 16 characters (outboxd refuses shorter tokens)" }}
{{- end }}
{{- range $key := list "maxAge" "retryAfterMax" "requestTimeout" "connectTimeout" "pollInterval" "lease" "circuitCooldown" "shutdownGrace" "retentionSucceeded" "retentionDead" "retentionInterval" "statsInterval" }}
{{- $v := get $.Values.config $key }}
{{- if not (or (kindIs "invalid" $v) (eq (toString $v) "")) }}
{{- $_ = include "outboxd.durationSeconds" (list (printf "config.%s" $key) $v) }}
{{- end }}
{{- end }}
{{- range $key := list "maxPayloadBytes" "concurrency" "dbPoolSize" "routeBatch" "claimBatch" "circuitFailures" }}
{{- $v := include "outboxd.envString" (get $.Values.config $key) }}
{{- if and $v (not (regexMatch "^[0-9]+$" $v)) }}
{{- fail (printf "config.%s = %q must be a whole number" $key $v) }}
{{- end }}
{{- end }}
{{- $jitter := include "outboxd.envString" .Values.config.retryJitter }}
{{- if and $jitter (or (not (regexMatch "^[0-9]*\\.?[0-9]+$" $jitter)) (gt (float64 $jitter) 1.0)) }}
{{- fail (printf "config.retryJitter = %q must be a number between 0 and 1" $jitter) }}
{{- end }}
{{- $labels := include "outboxd.envString" .Values.config.metricsEndpointLabels }}
{{- if and $labels (not (regexMatch "^(all|none|top:[1-9][0-9]{0,5})$" $labels)) }}
{{- fail (printf "config.metricsEndpointLabels = %q must be all, none or top:N" $labels) }}
{{- end }}
{{- if not (has (include "outboxd.envString" .Values.config.migrate) (list "" "true" "false")) }}
{{- fail (printf "config.migrate = %q must be true or false" (toString .Values.config.migrate)) }}
{{- end }}
{{- if .Values.config.retrySchedule }}
{{- range $d := splitList "," (toString .Values.config.retrySchedule) }}
{{- $_ = include "outboxd.durationSeconds" (list "config.retrySchedule (OUTBOXD_RETRY_SCHEDULE)" $d) }}
{{- end }}
{{- end }}
{{- $_ = include "outboxd.terminationGracePeriodSeconds" . }}
{{- if .Values.config.replicaId }}
{{- if or (eq .Values.mode "sidecar") .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail "config.replicaId must be unique per replica: leave it empty (the default is hostname-pid-random) unless exactly one replica runs (mode: deployment, replicaCount: 1, no autoscaling)" }}
{{- end }}
{{- end }}
{{- $_ = include "outboxd.inboundPort" . }}
{{- if and .Values.inbound.ingress.enabled (not (and (eq .Values.mode "deployment") (include "outboxd.inboundReachable" .))) }}
{{- fail (printf "inbound.ingress.enabled: the Ingress needs the inbound Service, which exists only in mode: deployment with config.inboundListen beyond loopback (e.g. 0.0.0.0:8080); config.inboundListen = %q, mode = %s" (include "outboxd.envString" .Values.config.inboundListen) .Values.mode) }}
{{- end }}
{{- if and (include "outboxd.inboundPort" .) (eq (include "outboxd.inboundPort" .) (include "outboxd.listenPort" .)) }}
{{- fail (printf "config.inboundListen and config.listen use the same port %s: the public inbound listener needs a port of its own" (include "outboxd.listenPort" .)) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (eq .Values.mode "sidecar") }}
{{- fail "serviceMonitor.enabled: in sidecar mode there is no outboxd Service to select; use podMonitor.enabled with podMonitor.selector matching your application's pods" }}
{{- end }}
{{- if and (or .Values.serviceMonitor.enabled .Values.podMonitor.enabled) (include "outboxd.listenIsLoopback" .) }}
{{- fail (printf "serviceMonitor/podMonitor: config.listen = %s is loopback, Prometheus cannot reach it; listen on 0.0.0.0 (with an admin token)" (toString .Values.config.listen)) }}
{{- end }}
{{- if and .Values.podMonitor.enabled (eq .Values.mode "sidecar") (not .Values.podMonitor.selector) }}
{{- fail "podMonitor.selector is required: a label selector of your application's pods (the ones with the outboxd sidecar), e.g. {matchLabels: {app.kubernetes.io/name: shop}}" }}
{{- end }}
{{- end }}

{{/* Checksums for pod annotations: pods restart when outboxd's configuration changes. */}}
{{- define "outboxd.podAnnotations" -}}
checksum/outboxd-config: {{ include "outboxd.configData" . | sha256sum }}
{{- if include "outboxd.createsSecret" . }}
checksum/outboxd-secret: {{ include "outboxd.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/* Data of the chart-created Secret (base64). The generated token is read back when it exists. */}}
{{- define "outboxd.secretData" -}}
{{- if and (not .Values.database.existingSecret) .Values.database.url }}
DATABASE_URL: {{ .Values.database.url | toString | b64enc | quote }}
{{- end }}
{{- if not .Values.adminToken.existingSecret }}
{{- if .Values.adminToken.value }}
OUTBOXD_ADMIN_TOKEN: {{ .Values.adminToken.value | toString | b64enc | quote }}
{{- else if .Values.adminToken.generate }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "outboxd.secretName" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "OUTBOXD_ADMIN_TOKEN") }}
OUTBOXD_ADMIN_TOKEN: {{ index $existing.data "OUTBOXD_ADMIN_TOKEN" | quote }}
{{- else }}
OUTBOXD_ADMIN_TOKEN: {{ randAlphaNum 40 | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The outboxd container as a YAML list item. Call with (dict "ctx" <chart scope> "sidecar" <bool>).
*/}}
{{- define "outboxd.container" -}}
{{- $ctx := .ctx }}
{{- $sidecar := .sidecar }}
{{- with $ctx }}
{{- include "outboxd.validate" . }}
{{- $port := include "outboxd.listenPort" . | int }}
{{- $reachable := not (include "outboxd.listenIsLoopback" .) }}
- name: {{ ternary .Values.sidecar.containerName "outboxd" $sidecar | default "outboxd" }}
  image: {{ include "outboxd.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run"]
  envFrom:
    - configMapRef:
        name: {{ include "outboxd.fullname" . }}
  {{- with .Values.extraEnvFrom }}
    {{- toYaml . | nindent 4 }}
  {{- end }}
  env:
    - name: DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ include "outboxd.databaseSecretName" . }}
          key: {{ include "outboxd.databaseSecretKey" . }}
  {{- if and .Values.database.existingSecret .Values.database.listenUrlKey }}
    - name: OUTBOXD_LISTEN_DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ include "outboxd.databaseSecretName" . }}
          key: {{ .Values.database.listenUrlKey }}
  {{- end }}
  {{- if .Values.portalKey.existingSecret }}
    - name: OUTBOXD_PORTAL_KEY
      valueFrom:
        secretKeyRef:
          name: {{ .Values.portalKey.existingSecret }}
          key: {{ .Values.portalKey.existingSecretKey | default "OUTBOXD_PORTAL_KEY" }}
  {{- end }}
  {{- if include "outboxd.adminTokenSecretName" . }}
    - name: OUTBOXD_ADMIN_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "outboxd.adminTokenSecretName" . }}
          key: {{ include "outboxd.adminTokenSecretKey" . }}
  {{- end }}
  {{- if .Values.egress.proxySecret.name }}
    - name: OUTBOXD_EGRESS_PROXY
      valueFrom:
        secretKeyRef:
          name: {{ .Values.egress.proxySecret.name }}
          key: {{ .Values.egress.proxySecret.key | default "OUTBOXD_EGRESS_PROXY" }}
  {{- end }}
  {{- if .Values.egress.caConfigMap.name }}
    - name: OUTBOXD_EGRESS_CA_FILE
      value: {{ printf "/etc/outboxd/egress-ca/%s" .Values.egress.caConfigMap.key | quote }}
  {{- end }}
  {{- if .Values.clientCertificates }}
    - name: OUTBOXD_CLIENT_CERT_DIR
      value: /etc/outboxd/client-certs
  {{- end }}
  {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if or .Values.extraVolumeMounts .Values.egress.caConfigMap.name .Values.clientCertificates }}
  volumeMounts:
    {{- if .Values.egress.caConfigMap.name }}
    - name: outboxd-egress-ca
      mountPath: /etc/outboxd/egress-ca
      readOnly: true
    {{- end }}
    {{- if .Values.clientCertificates }}
    - name: outboxd-client-certs
      mountPath: /etc/outboxd/client-certs
      readOnly: true
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- if or $reachable (include "outboxd.inboundReachable" .) }}
  ports:
    {{- if $reachable }}
    - name: outboxd-http
      containerPort: {{ $port }}
      protocol: TCP
    {{- end }}
    {{- if include "outboxd.inboundReachable" . }}
    - name: outboxd-inbound
      containerPort: {{ include "outboxd.inboundPort" . }}
      protocol: TCP
    {{- end }}
  {{- end }}
  {{- if $reachable }}
  {{- if .Values.probes.startup.enabled }}
  startupProbe:
    httpGet:
      path: /healthz
      port: outboxd-http
    {{- toYaml (omit .Values.probes.startup "enabled") | nindent 4 }}
  {{- end }}
  {{- if .Values.probes.liveness.enabled }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: outboxd-http
    {{- toYaml (omit .Values.probes.liveness "enabled") | nindent 4 }}
  {{- end }}
  {{- if and .Values.probes.readiness.enabled (or (not $sidecar) .Values.sidecar.readinessProbe) }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: outboxd-http
    {{- toYaml (omit .Values.probes.readiness "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
PUBLIC. The outboxd container for your application's pod template, as a list item under
`containers:`. Pass the outboxd subchart's scope:

  containers:
    - name: app
      ...
    {{- include "outboxd.sidecarContainer" .Subcharts.outboxd | nindent 4 }}

The container reads the ConfigMap and Secrets the subchart renders (install the subchart with
mode: sidecar).
*/}}
{{- define "outboxd.sidecarContainer" -}}
{{- if not .Values.sidecar.native }}
{{- include "outboxd.container" (dict "ctx" . "sidecar" true) | trim }}
{{- end }}
{{- end }}

{{/*
PUBLIC. With sidecar.native (Kubernetes 1.29+): the outboxd container as a native sidecar, a
list item under `initContainers:` with `restartPolicy: Always` (it starts before your
application's containers and stops after them). Renders nothing unless sidecar.native:

  {{- if .Values.outboxd.sidecar.native }}
  initContainers:
    {{- include "outboxd.sidecarInitContainer" .Subcharts.outboxd | nindent 4 }}
  {{- end }}
*/}}
{{- define "outboxd.sidecarInitContainer" -}}
{{- if .Values.sidecar.native }}
{{- include "outboxd.container" (dict "ctx" . "sidecar" true) | trim }}
  restartPolicy: Always
{{- end }}
{{- end }}
