# memvirtd --metrics scraped by a real Prometheus: a daemon whose config serves /metrics on a free
# port, a job of rank 3 that pages under it, and Prometheus (Debian's) scraping every second. Its
# HTTP API answers memvirt_launches_total, memvirt_page_outs_total and the device's memory with the
# labels gpu="GPU-<uuid>", gpu_index, job and rank, values above 0 and no larger than what
# 'memvirt stats --json' says afterwards. /metrics passes promtool's check, anything but GET
# /metrics is refused, and a bad --metrics address is refused by name. Skips only when Prometheus
# cannot start.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
MEMVIRTD=$MV_TOP_BUILDDIR/daemon/memvirtd
for p in prometheus promtool curl python3; do
	command -v "$p" >/dev/null || mv_fail "$p is not installed (scripts/setup installs it)"
done

STEPS=3
LONG=100000
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
JOB=e2e-prom-$$

# A bad address gets exit 2 and a line naming it; the daemon never starts.
badaddr() {
	rc=0
	"$MEMVIRTD" --socket "$T/bad.sock" --metrics "$1" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
	[ "$rc" -eq 2 ] || mv_fail "memvirtd --metrics $1: exit $rc, expected 2"
	[ "$(head -n 1 "$T/bad.err")" = "memvirtd: --metrics '$1': $2" ] ||
		mv_fail "memvirtd --metrics $1 said '$(head -n 1 "$T/bad.err")'"
	[ ! -e "$T/bad.sock" ] || mv_fail "memvirtd --metrics $1 listened on its socket"
}
badaddr 127.0.0.1:65536 "the port must be a number from 1 to 65535"
badaddr localhost:9464 "the address is not a numeric IPv4 address or a bracketed IPv6 one (127.0.0.1:9464, [::1]:9464)"
badaddr 127.0.0.1 "expected ADDRESS:PORT, such as 127.0.0.1:9464 or [::1]:9464"
echo "bad --metrics addresses are refused by name"

# Two ports nothing listens on, from the kernel.
ports=$(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
mport=${ports% *}
pport=${ports#* }

plain_run
# 40% of a device of 5/4 of the peak is half the peak: the job pages.
dev=$((peak * 5 / 4))
printf '{"daemon": {"metrics": "127.0.0.1:%s"}}\n' "$mport" >"$T/memvirt.json"
start_daemon --config "$T/memvirt.json"
grep -q "serving Prometheus metrics on http://127.0.0.1:$mport/metrics" "$T/memvirtd.log" ||
	mv_fail "memvirtd does not say it serves metrics on port $mport: $(cat "$T/memvirtd.log")"

# The job runs until the checks are done; cleanup ends it.
# shellcheck disable=SC2086 # ARGS is a list of words
SIMCUDA_MEM=$dev MEMVIRT_JOB=$JOB RANK=3 \
	"$MEMVIRT" run --simulate --socket "$S" --budget 40% -- "$MVTRAIN" ${ARGS% *} "$LONG" \
	>"$T/job.out" 2>"$T/job.err" &
RUN=$!
JOBS=$RUN

url=http://127.0.0.1:$mport
# /metrics shows the job once it has linked.
n=600
until curl -sf "$url/metrics" >"$T/metrics.txt" && grep -q "job=\"$JOB\",rank=\"3\"" "$T/metrics.txt"; do
	n=$((n - 1))
	[ "$n" -gt 0 ] || mv_fail "no job=\"$JOB\",rank=\"3\" series on $url/metrics after 60 s"
	alive "$RUN" || mv_fail "the job ended early: $(cat "$T/job.err")"
	sleep 0.1
done
promtool check metrics <"$T/metrics.txt" || mv_fail "promtool check metrics refused $url/metrics"
code() {
	curl -s -o /dev/null -w '%{http_code}' "$@"
}
[ "$(code "$url/")" = 404 ] || mv_fail "GET / answered $(code "$url/"), expected 404"
[ "$(code "$url/metrics/x")" = 404 ] || mv_fail "GET /metrics/x was not 404"
[ "$(code -X POST -d x "$url/metrics")" = 405 ] || mv_fail "POST /metrics was not 405"
echo "/metrics passes promtool; / and /metrics/x are 404, POST is 405"

mkdir "$T/tsdb"
cat >"$T/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: memvirt
    # memvirt's own job label is kept, not renamed exported_job.
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$mport']
EOF
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
	--web.listen-address="127.0.0.1:$pport" >"$T/prometheus.log" 2>&1 &
PROM=$!
JOBS="$JOBS $PROM"

# query EXPR: the API's answer for EXPR as lines "LABELS VALUE", one per series.
query() {
	curl -sf -G --data-urlencode "query=$1" "http://127.0.0.1:$pport/api/v1/query" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["status"] == "success", d
for r in d["data"]["result"]:
    m = r["metric"]
    print(",".join("%s=%s" % (k, m[k]) for k in sorted(m) if k not in ("instance",)), r["value"][1])'
}

# wait_series EXPR: waits (90 s at most) until EXPR has a series above 0; leaves it in `got`.
wait_series() {
	n=900
	while :; do
		alive "$PROM" || mv_skip "prometheus cannot start: $(tail -n 5 "$T/prometheus.log")"
		got=$(query "$1" 2>/dev/null) || got=
		[ -n "$got" ] && [ "$(echo "$got" | awk '{ print ($NF > 0) }' | head -n 1)" = 1 ] && break
		n=$((n - 1))
		[ "$n" -gt 0 ] || mv_fail "Prometheus has no $1 above 0 after 90 s: '$got'"
		alive "$RUN" || mv_fail "the job ended early: $(cat "$T/job.err")"
		sleep 0.1
	done
}

sel="{job=\"$JOB\"}"
wait_series "memvirt_launches_total$sel"
launches=$got
wait_series "memvirt_page_outs_total$sel"
outs=$got
echo "Prometheus: memvirt_launches_total $launches"
echo "Prometheus: memvirt_page_outs_total $outs"
[ "$(echo "$launches" | wc -l)" -eq 1 ] || mv_fail "more than one launches series: $launches"

# The daemon's word afterwards: counters only grow, so Prometheus's are no larger.
query "memvirt_launches_total$sel" >"$T/q.launches"
query "memvirt_page_outs_total$sel" >"$T/q.page_outs"
timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" || mv_fail "memvirt stats --json failed"
"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat" || mv_fail "cannot read the stats"
uuid=$(sess_field "$T/stats.flat" "$JOB" device)
index=$(sess_field "$T/stats.flat" "$JOB" gpu_index)
[ "$index" = null ] && index=
[ "$(sess_field "$T/stats.flat" "$JOB" rank)" = 3 ] || mv_fail "memvirt stats shows rank '$(sess_field "$T/stats.flat" "$JOB" rank)', expected 3"
gpu=$(echo "$uuid" | sed 's/^\(........\)\(....\)\(....\)\(....\)\(............\)$/GPU-\1-\2-\3-\4-\5/')
labels="__name__=%s,gpu=$gpu,gpu_index=$index,job=$JOB,rank=3"
for m in launches:memvirt_launches_total page_outs:memvirt_page_outs_total; do
	key=${m%%:*}
	name=${m#*:}
	line=$(cat "$T/q.$key")
	# shellcheck disable=SC2059 # the name goes into the labels
	[ "${line% *}" = "$(printf "$labels" "$name")" ] ||
		mv_fail "$name's labels are '${line% *}', expected '$(printf "$labels" "$name")'"
	v=${line##* }
	s=$(sess_field "$T/stats.flat" "$JOB" "$key")
	[ "$v" -gt 0 ] && [ "$v" -le "$s" ] || mv_fail "$name is $v in Prometheus, $s in memvirt stats after"
done
total=$(awk -v d="$uuid" '
	{ split($1, k, ".") }
	k[1] == "devices" && k[3] == "device" && $2 == d { mine[k[2]] = 1 }
	k[1] == "devices" && k[3] == "total" { t[k[2]] = $2 }
	END { for (i in mine) print t[i] }' "$T/stats.flat")
wait_series "memvirt_gpu_memory_total_bytes{gpu=\"$gpu\"}"
[ "$got" = "__name__=memvirt_gpu_memory_total_bytes,gpu=$gpu,gpu_index=$index,job=memvirt $total" ] ||
	mv_fail "memvirt_gpu_memory_total_bytes is '$got', expected the device's $total bytes"
version=$("$MEMVIRTD" --version | sed -n 's/^memvirtd \([^ ]*\) .*/\1/p')
wait_series memvirt_build_info
[ "$got" = "__name__=memvirt_build_info,job=memvirt,version=$version 1" ] ||
	mv_fail "memvirt_build_info is '$got', expected version $version"
echo "Prometheus's series match memvirt stats: $gpu, gpu_index '$index', rank 3, device total $total"
exit 0
