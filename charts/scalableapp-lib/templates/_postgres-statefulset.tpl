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
          livenessProbe:
            exec:
              command: [pg_isready, -h, 127.0.0.1, -p, '5432']
            periodSeconds: 10
            failureThreshold: 6
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
            {{- include "scalableapp-lib.tmpMount" . | nindent 12 }}
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
        {{- include "scalableapp-lib.tmpVolume" . | nindent 8 }}
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
