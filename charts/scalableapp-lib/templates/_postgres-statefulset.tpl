{{/*
One Postgres cluster's StatefulSet: its instances, their probes and their volume claims.
*/}}
{{- define "scalableapp-lib.postgres.statefulSet" -}}
{{- $c := . }}
{{- $ns := .context.Release.Namespace }}
{{- $configName := include "scalableapp-lib.postgres.configName" . }}
{{- $headless := include "scalableapp-lib.postgres.headless" . }}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  {{- include "scalableapp-lib.member.metadata" $c | nindent 2 }}
spec:
  replicas: {{ add1 (int .spec.replicas) }}
  serviceName: {{ $headless }}
  podManagementPolicy: OrderedReady
  selector:
    matchLabels:
      {{- include "scalableapp-lib.member.selector" $c | nindent 6 }}
  # Data is precious: claims outlive the StatefulSet unless the user chose Delete.
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: {{ .spec.deletionPolicy }}
    whenScaled: Retain
  template:
    metadata:
      labels:
        {{- include "scalableapp-lib.member.podLabels" $c | nindent 8 }}
      annotations:
        # Restarts the servers when their configuration changes, not when only the primary record does.
        scalableapp.io/config-hash: {{ include "scalableapp-lib.postgres.serverConfig" . | fromJson | include "scalableapp-lib.contentHash" | quote }}
        {{- if include "scalableapp-lib.postgres.monitored" . }}
        prometheus.io/scrape: "true"
        prometheus.io/port: "9187"
        prometheus.io/path: /metrics
        {{- end }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        runAsNonRoot: true
        # The uid of the `postgres` user in the official image: initdb needs a user it can look up.
        runAsUser: 999
        runAsGroup: 999
        fsGroup: 999
        {{- /* Not every file made group-writable at each mount: postgres refuses such a data directory. */}}
        fsGroupChangePolicy: OnRootMismatch
        seccompProfile:
          type: RuntimeDefault
      # A primary needs time to checkpoint cleanly on shutdown.
      terminationGracePeriodSeconds: 60
      containers:
        - name: postgres
          image: {{ include "scalableapp-lib.postgres.image" . | quote }}
          command: [sh, /config/start.sh]
          env:
            - name: PGDATA
              value: /var/lib/postgresql/data/pgdata
            - name: PGPORT
              value: '5432'
            - name: INSTANCE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            # Read when the container starts: whoever the record names starts as the primary, every
            # other instance as its standby.
            - name: PRIMARY_NAME
              valueFrom:
                configMapKeyRef:
                  name: {{ $configName }}
                  key: primary
            - name: PRIMARY_HOST
              value: $(PRIMARY_NAME).{{ $headless }}.{{ $ns }}.svc
            - name: PRIMARY_PORT
              value: '5432'
            - name: CREDENTIALS_DIR
              value: /credentials
            - name: CONFIG_DIR
              value: /config
            {{- if include "scalableapp-lib.postgres.tls" . }}
            # start.sh verifies the primary against the CA; ready.sh reloads a renewed certificate.
            - name: TLS_CA_FILE
              value: /tls/ca.crt
            - name: TLS_CERT_FILE
              value: /tls/tls.crt
            {{- end }}
          ports:
            - name: postgres
              containerPort: 5432
              protocol: TCP
          resources:
            {{- include "scalableapp-lib.resources" .spec.resources | nindent 12 }}
          {{- /* Starting (initdb, a clone, a rewind, crash recovery) may take up to an hour. */}}
          startupProbe:
            exec:
              command: [pg_isready, -h, 127.0.0.1, -p, '5432']
            periodSeconds: 5
            failureThreshold: 720
          {{- /* Without an operator nothing is promoted beside a primary: ready.sh fences nothing. */}}
          readinessProbe:
            exec:
              command: [sh, /config/ready.sh]
            periodSeconds: 5
            timeoutSeconds: 3
          {{- /* A hung server is restarted within a minute; an exec is costly (runc), so it runs every 20 s. */}}
          livenessProbe:
            exec:
              command: [pg_isready, -h, 127.0.0.1, -p, '5432']
            periodSeconds: 20
            timeoutSeconds: 10
            failureThreshold: 3
          {{- include "scalableapp-lib.containerSecurity" . | nindent 10 }}
          volumeMounts:
            - name: data
              mountPath: /var/lib/postgresql/data
            - name: config
              mountPath: /config
              readOnly: true
            - name: credentials
              mountPath: /credentials
              readOnly: true
            - name: run
              mountPath: /var/run/postgresql
            {{- if include "scalableapp-lib.postgres.tls" . }}
            - name: tls
              mountPath: /tls
              readOnly: true
            {{- end }}
            {{- include "scalableapp-lib.tmpMount" . | nindent 12 }}
        {{- /*
        With monitoring: postgres_exporter over loopback as the role monitor (postgresExporter() in
        operator/tiers/monitoring.ts), after the server (the failover logic reads the first
        container). Its own uid; it sees only the monitor password (as a file) and the queries in
        the ConfigMap. No readiness probe: a failing exporter never makes an instance unready.
        */}}
        {{- if include "scalableapp-lib.postgres.monitored" . }}
        - name: metrics
          image: {{ .monitoring.exporterImages.postgres | quote }}
          args:
            - --web.listen-address=:9187
            - --extend.query-path=/config/exporter-queries.yaml
          env:
            - name: DATA_SOURCE_URI
              {{- /* The server takes TLS only: encrypted, unchecked (loopback, a name no certificate holds). */}}
              value: 127.0.0.1:5432/postgres?sslmode={{ ternary "require" "disable" (eq (include "scalableapp-lib.postgres.tls" .) "true") }}
            - name: DATA_SOURCE_USER
              value: monitor
            - name: DATA_SOURCE_PASS_FILE
              value: /monitor/password
          ports:
            - name: metrics
              containerPort: 9187
              protocol: TCP
          resources:
            {{- include "scalableapp-lib.resources" .monitoring.resources | nindent 12 }}
          livenessProbe:
            tcpSocket:
              port: metrics
            periodSeconds: 20
            failureThreshold: 3
          {{- include "scalableapp-lib.containerSecurity" . | nindent 10 }}
            runAsUser: 65532
            runAsGroup: 65532
          volumeMounts:
            - name: monitor
              mountPath: /monitor
              readOnly: true
            - name: config
              mountPath: /config
              readOnly: true
            {{- include "scalableapp-lib.tmpMount" . | nindent 12 }}
        {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ $configName }}
        - name: credentials
          secret:
            secretName: {{ .credentialsName }}
            # 0400: only the postgres user reads the passwords.
            defaultMode: 256
        - name: run
          emptyDir: {}
        {{- if include "scalableapp-lib.postgres.tls" . }}
        - name: tls
          secret:
            secretName: {{ .tlsSecretName }}
            # 0440, root-owned and group-readable by the server's group (fsGroup): what postgres
            # accepts for a key file it does not own.
            defaultMode: 288
        {{- end }}
        {{- include "scalableapp-lib.tmpVolume" . | nindent 8 }}
        {{- if include "scalableapp-lib.postgres.monitored" . }}
        # The monitor role's password alone: the exporter never sees another credential.
        - name: monitor
          secret:
            secretName: {{ .credentialsName }}
            items:
              - key: monitor-password
                path: password
            # 0440
            defaultMode: 288
        {{- end }}
      {{- include "scalableapp-lib.member.zoneSpread" $c | nindent 6 }}
  volumeClaimTemplates:
    - metadata:
        name: data
        # Without helm.sh/chart: claim templates are immutable, a chart upgrade must not touch them.
        labels:
          {{- include "scalableapp-lib.member.podLabels" $c | nindent 10 }}
      spec:
        accessModes: [ReadWriteOnce]
        {{- with .spec.storage.storageClassName }}
        storageClassName: {{ . | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ include "scalableapp-lib.quantity" .spec.storage.size | quote }}
{{- end }}
