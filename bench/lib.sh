# Shared helpers for the bench/ scripts (sourced, not run).
# Needs: nginx (Debian), wrk, python3, curl.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
OUT_DIR="$BENCH_DIR/out"
mkdir -p "$OUT_DIR"

# Peak RSS (VmHWM) of a process and all its children, in KiB.
peak_rss_kib() {
  local pid=$1 total=0 p
  for p in $pid $(pgrep -P "$pid" 2>/dev/null); do
    local v
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# Wait until an HTTP URL answers.
# cpu_ticks PID -> user+system clock ticks of PID and its children so far
# (nginx's workers are the master's children; sluice's threads are in PID).
cpu_ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

# wrk_measure NAME URL PID PATHS -> "rps mbps rss_kib cpu_s_per_gb" for one
# wrk run (THREADS, CONNS, DURATION) over the rotating PATHS against URL,
# with PID's peak RSS and its own CPU seconds per GB served; wrk's output is
# kept in $OUT_DIR/wrk-NAME.txt, and its errors go to stderr.
wrk_measure() {
  local name=$1 url=$2 pid=$3 paths=$4 out="$OUT_DIR/wrk-$1.txt" t0 t1 rps mbps rss cpu
  t0=$(cpu_ticks "$pid")
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 30s -s "$BENCH_DIR/rotate.lua" "$url" -- "$paths" > "$out"
  t1=$(cpu_ticks "$pid")
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  mbps=$(awk '/^Transfer\/sec:/ {v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2);
          if (u=="GB") n*=1024; else if (u=="KB") n/=1024; else if (u!="MB") n/=1048576; printf "%.0f", n}' "$out")
  rss=$(peak_rss_kib "$pid")
  cpu=$(echo "($t1 - $t0) / $(getconf CLK_TCK) / ($mbps * ${DURATION%s} / 1024)" | bc -l)
  if grep -qE 'Non-2xx|Socket errors' "$out"; then echo "  $name: $(grep -E 'Non-2xx|Socket errors' "$out" | tr '\n' ' ')" >&2; fi
  printf '%s %s %s %.2f\n' "$rps" "$mbps" "$rss" "$cpu"
}

wait_http() {
  local url=$1 i
  for i in $(seq 1 200); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "timed out waiting for $url" >&2
  return 1
}

# Start a Debian nginx with the given http{} body on its own prefix dir.
# Prints the master pid.
start_nginx() {
  local name=$1 http_body=$2 dir="$OUT_DIR/nginx-$1"
  rm -rf "$dir" && mkdir -p "$dir/logs" "$dir/tmp"
  cat > "$dir/nginx.conf" <<CONF
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
daemon off;
load_module_placeholder;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  $http_body
}
CONF
  sed -i "s|load_module_placeholder;|${NGINX_MODULES:-}|" "$dir/nginx.conf"
  nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/logs/stdout.log" 2>&1 &
  echo $!
}

# nginx_proxy_location: the location block of nginx as a streaming proxy at
# its best (upstream "origin" with keepalive, HTTP/1.1, 64 KiB buffers in
# memory, no temp files), for bench/proxy.sh and bench/tls.sh.
nginx_proxy_location() {
  cat <<'NGINX'
location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
      proxy_buffer_size 64k;
      proxy_buffers 16 64k;
      proxy_busy_buffers_size 128k;
      proxy_max_temp_file_size 0;
    }
NGINX
}

# wrk_medians_table RESULTS NAME... -> a Markdown table of each NAME's
# medians over the lines "NAME run N: rps mbps rss_kib cpu" in RESULTS.
wrk_medians_table() {
  local results=$1 s rps mbps rss cpu
  shift
  echo
  echo "| server | req/s (median) | MB/s (median) | peak RSS MiB (median) | CPU s per GB (median) |"
  echo "|---|---|---|---|---|"
  for s in "$@"; do
    rps=$(awk -v s="$s" '$1==s {print $4}' "$results" | median)
    mbps=$(awk -v s="$s" '$1==s {print $5}' "$results" | median)
    rss=$(awk -v s="$s" '$1==s {print $6}' "$results" | median)
    cpu=$(awk -v s="$s" '$1==s {print $7}' "$results" | median)
    printf '| %s | %.0f | %.0f | %.1f | %.2f |\n' "$s" "$rps" "$mbps" "$(echo "$rss / 1024" | bc -l)" "$cpu"
  done
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# Processes started by a bench script; killed when it exits (call
# kill_pids_on_exit once, then append pids with `pids+=("$pid")`).
pids=()
kill_pids_on_exit() {
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
}

# A Debian nginx serving ROOT as a static origin on 127.0.0.1:PORT (sendfile,
# long keep-alive), the origin every bench/ script proxies. Prints its pid
# once it answers CHECK_PATH (a path under ROOT, starting with /).
start_static_origin() {
  local name=$1 port=$2 root=$3 check_path=$4 pid
  pid=$(start_nginx "$name" "
  server {
    listen 127.0.0.1:$port backlog=4096;
    keepalive_requests 1000000;
    root $root;
    sendfile on; tcp_nopush on;
  }")
  wait_http "http://127.0.0.1:$port$check_path" >&2 || { kill "$pid" 2>/dev/null; return 1; }
  echo "$pid"
}

# The JPEGs under DIR as URL paths (/a.jpg), sorted.
jpeg_paths() {
  (cd "$1" && find . -type f \( -name '*.jpg' -o -name '*.jpeg' \) | sed 's|^\.||' | sort)
}
