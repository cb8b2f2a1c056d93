#!/usr/bin/env bash
# The engagement pipeline demo, on loopback with no configuration: starts
# PostgreSQL (initdb into a temp directory, wal_level=logical, fsync=off, as
# the unprivileged `postgres` user when run as root), the local Kafka broker
# (weir-kafka-dev, for the outbox and the dead letters), redis-server,
# clickhouse-server (if installed; the pipeline runs without it otherwise),
# the generator inserting, updating and deleting rows in PostgreSQL, and the
# pipeline capturing them from PostgreSQL's logical replication
# (--source=postgres); after DEMO_SECONDS (default 30) prints the live top-10
# leaderboard from Redis and an analytics query from ClickHouse, then stops
# everything it started.
#
# DEMO_SOURCE=kafka runs the Kafka-only chain instead: the generator writes
# Debezium's envelopes straight into the broker's topics and the pipeline
# reads them there (no PostgreSQL).
#
# With INSTANCES=N (N > 1) the pipeline runs in cluster mode as N processes
# of one job (CLUSTER_TASKS tasks, default 4), and one of them is killed with
# kill -9 halfway through: the others take its tasks over from its last
# checkpoint, and the outputs at the end are still complete.
#
# Usage: examples/engagement/demo.sh BUILD_DIR   (run by .ci/demo after the build)
# Environment: DEMO_SECONDS, DEMO_SOURCE (postgres or kafka; default postgres,
# kafka with INSTANCES > 1), GENERATION_RATE (records/minute, default 200000),
# PARALLELISM (default 2), INSTANCES (default 1), CLUSTER_TASKS (default 4),
# and every other variable of engagement-pipeline and engagement-generator
# (see their --help).
set -euo pipefail

build=${1:?usage: demo.sh BUILD_DIR}
seconds=${DEMO_SECONDS:-30}
work=$(mktemp -d "${TMPDIR:-/tmp}/weir-engagement-demo-XXXXXX")
pids=()
pg_stop=()

cleanup() {
  local status=$?
  if [ ${#pg_stop[@]} -gt 0 ]; then "${pg_stop[@]}" >/dev/null 2>&1 || true; fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work" "${pg_dir:-}"
  exit "$status"
}
trap cleanup EXIT INT TERM

say() { printf '\n== %s\n' "$*"; }

# A TCP port of 127.0.0.1 nobody listens on.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

wait_for() {  # wait_for WHAT TIMEOUT_S COMMAND...
  local what=$1 timeout=$2
  shift 2
  for _ in $(seq $((timeout * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "demo: $what did not come up within ${timeout}s" >&2
  return 1
}

prefix=engagement
instances=${INSTANCES:-1}
source=${DEMO_SOURCE:-postgres}
if [ "$instances" -gt 1 ]; then source=kafka; fi  # a replication slot has one reader
case $source in
  postgres | kafka) ;;
  *) echo "demo: DEMO_SOURCE=$source is neither postgres nor kafka" >&2; exit 2 ;;
esac
cluster_topics=()
if [ "$instances" -gt 1 ]; then
  export CLUSTER_JOB_ID=${CLUSTER_JOB_ID:-engagement-demo} CLUSTER_TASKS=${CLUSTER_TASKS:-4}
  # The mock broker cannot create topics: the cluster job's own go in at its start.
  mapfile -t cluster_topics < <(KAFKA_BROKERS=127.0.0.1:9 \
    "$build/examples/engagement/engagement-pipeline" --print-cluster-topics)
fi
say "Kafka: weir-kafka-dev (librdkafka's mock cluster) on loopback"
"$build/tools/weir-kafka-dev" "$prefix.public.content:4" \
  "$prefix.public.engagement_events:8" "$prefix.engagement_enriched:8" "$prefix.dlq:1" \
  "${cluster_topics[@]}" >"$work/kafka.out" 2>"$work/kafka.log" &
pids+=($!)
wait_for "weir-kafka-dev" 20 test -s "$work/kafka.out"
brokers=$(head -n1 "$work/kafka.out")
echo "brokers: $brokers"

say "Redis: redis-server on loopback"
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for "redis-server" 20 redis-cli -p "$redis_port" ping
echo "redis: 127.0.0.1:$redis_port"

clickhouse_url=
clickhouse_bin=$(command -v clickhouse-server || echo /usr/bin/clickhouse-server)
if [ -x "$clickhouse_bin" ]; then
  say "ClickHouse: clickhouse-server on loopback"
  ch_http=$(free_port)
  ch_tcp=$(free_port)
  mkdir -p "$work/ch"
  cat >"$work/ch/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$work/ch/server.log</log><errorlog>$work/ch/server.err.log</errorlog><console>0</console></logger>
  <http_port>$ch_http</http_port>
  <tcp_port>$ch_tcp</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$work/ch/data/</path>
  <tmp_path>$work/ch/tmp/</tmp_path>
  <user_files_path>$work/ch/user_files/</user_files_path>
  <format_schema_path>$work/ch/format_schemas/</format_schema_path>
  <users_config>$work/ch/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <mlock_executable>false</mlock_executable>
</yandex>
EOF
  cat >"$work/ch/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
EOF
  (cd "$work/ch" && exec "$clickhouse_bin" --config-file="$work/ch/config.xml") \
    >"$work/ch/stdout.log" 2>&1 &
  pids+=($!)
  if wait_for "clickhouse-server" 60 curl -sf "http://127.0.0.1:$ch_http/ping"; then
    clickhouse_url="http://127.0.0.1:$ch_http"
    echo "clickhouse: $clickhouse_url"
  else
    echo "demo: clickhouse-server did not start (log: $work/ch/server.err.log); going on without it"
  fi
else
  say "ClickHouse: not installed (apt-get install clickhouse-server); the pipeline runs without it"
fi

pipeline_env=()
generator_env=("KAFKA_BROKERS=$brokers")
generator_flags=()
if [ "$source" = postgres ]; then
  say "PostgreSQL: initdb into a temp directory, on loopback (wal_level=logical, fsync=off)"
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [ -z "$pg_bin" ]; then
    echo "demo: PostgreSQL is not installed (apt-get install postgresql), or run with DEMO_SOURCE=kafka" >&2
    exit 1
  fi
  pg_port=$(free_port)
  # Its own directory, readable by the server's user (the work dir is private).
  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/weir-engagement-pg-XXXXXX")
  as_pg=()
  if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root
    chown postgres: "$pg_dir"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 \
    >"$pg_dir/initdb.log" 2>&1 || { cat "$pg_dir/initdb.log" >&2; exit 1; }
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pg_dir \
        -c wal_level=logical -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_replication_slots=8 -c max_wal_senders=8" start >/dev/null ||
    { cat "$pg_dir/server.log" >&2; exit 1; }
  pg_stop=("${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop)
  postgres_url="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
  echo "postgres: $postgres_url (data and log in $pg_dir)"
  generator_env=("POSTGRES_URL=$postgres_url")
  generator_flags=(--no-kafka --postgres-reset)
  pipeline_env=("SOURCE=postgres" "POSTGRES_URL=$postgres_url")
fi

pipelines=()
start_pipelines() {
for ((i = 0; i < instances; i++)); do
  if [ "$instances" -gt 1 ]; then
    say "engagement-pipeline $i of $instances (cluster job $CLUSTER_JOB_ID, $CLUSTER_TASKS tasks)"
  else
    say "engagement-pipeline (status every 5 s; its live dashboard's address follows)"
  fi
  env "${pipeline_env[@]}" KAFKA_BROKERS="$brokers" REDIS_PORT="$redis_port" \
    CLICKHOUSE_URL="$clickhouse_url" CHECKPOINT_URI="file://$work/checkpoints" \
    PARALLELISM="${PARALLELISM:-2}" HTTP_PORT="${HTTP_PORT:-0}" \
    "$build/examples/engagement/engagement-pipeline" > >(sed -u "s/^/  [pipeline $i] /") 2>&1 &
  pipelines+=($!)
  pids=("$!" "${pids[@]}")
done
}

start_generator() {
  if [ "$source" = postgres ]; then
    say "engagement-generator into PostgreSQL at ${GENERATION_RATE:-200000} records/minute for ${seconds}s"
  else
    say "engagement-generator into Kafka at ${GENERATION_RATE:-200000} records/minute for ${seconds}s"
  fi
  env "${generator_env[@]}" "$build/examples/engagement/engagement-generator" \
    "${generator_flags[@]}" > >(sed -u 's/^/  [generator] /') 2>&1 &
  generator=$!
  pids=("$generator" "${pids[@]}")
}

if [ "$source" = postgres ]; then
  # The generator creates the tables; the pipeline then snapshots what is
  # there and streams every change after it.
  start_generator
  wait_for "the tables in PostgreSQL" 30 "$pg_bin/psql" "$postgres_url" -tAq \
    -c "SELECT 'public.content'::regclass, 'public.engagement_events'::regclass"
  start_pipelines
else
  start_pipelines
  start_generator
fi

if [ "$instances" -gt 1 ]; then
  sleep $((seconds / 2))
  say "kill -9 of pipeline 0: the others take its tasks over after the session timeout"
  kill -KILL "${pipelines[0]}" 2>/dev/null || true
  sleep $((seconds - seconds / 2))
else
  sleep "$seconds"
fi

if [ "$instances" -gt 1 ]; then
  say "Generator stopped; the surviving pipelines catch up"
  kill -TERM "$generator" 2>/dev/null || true
  wait "$generator" 2>/dev/null || true
  sleep 10
fi

say "Top 10 content by engagement seconds over the last 10 minutes (Redis top_engagement:10min)"
rank=0
mapfile -t top < <(redis-cli -p "$redis_port" ZREVRANGE top_engagement:10min 0 9 WITHSCORES)
for ((i = 0; i + 1 < ${#top[@]}; i += 2)); do
  rank=$((rank + 1))
  id=${top[i]}
  mapfile -t info < <(redis-cli -p "$redis_port" HMGET "content:$id:metrics" slug content_type \
    plays finishes avg_engagement_pct)
  pct=${info[4]:+${info[4]}%}
  printf '%2d. %-36s %-11s %10.1f s  plays %-6s finishes %-6s avg engagement %s\n' "$rank" \
    "${info[0]}" "${info[1]}" "${top[i + 1]}" "${info[2]}" "${info[3]}" "${pct:-n/a}"
done
[ "$rank" -gt 0 ] || echo "(empty: the pipeline has not written yet; see its log above)"

if [ -n "$clickhouse_url" ]; then
  say "Average engagement per content type (ClickHouse engagement_hourly, the job's hourly rollup)"
  curl -sf "$clickhouse_url/" --data-binary "SELECT content_type, sum(events) AS events,
      round(sum(engagement_pct_sum) / sum(pct_events), 2) AS avg_engagement_pct
    FROM engagement_hourly FINAL GROUP BY content_type ORDER BY content_type
    FORMAT PrettyCompactNoEscapes" || echo "(query failed)"
  say "Enriched events: rows written (a restore writes some again) and rows after deduplication"
  curl -sf "$clickhouse_url/" --data-binary "SELECT (SELECT count() FROM engagement_enriched)
      AS written, (SELECT count() FROM engagement_enriched FINAL) AS events
    FORMAT PrettyCompactNoEscapes" || echo "(query failed)"
  say "Enriched events per 30-minute partition (ClickHouse engagement_enriched)"
  curl -sf "$clickhouse_url/" --data-binary "SELECT partition, sum(rows) AS rows
    FROM system.parts WHERE table = 'engagement_enriched' AND active
    GROUP BY partition ORDER BY partition FORMAT PrettyCompactNoEscapes" || echo "(query failed)"
fi

say "Stopping (the pipeline takes a final checkpoint)"
kill -TERM "$generator" 2>/dev/null || true
wait "$generator" 2>/dev/null || true
for pipeline in "${pipelines[@]}"; do kill -TERM "$pipeline" 2>/dev/null || true; done
for pipeline in "${pipelines[@]}"; do wait "$pipeline" 2>/dev/null || true; done
