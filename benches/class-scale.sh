#!/bin/bash
# A class of N url-shortener students on the local Docker engine: `lab class
# up`, `verify`, `status`, `down`, each timed, with one instance's whole
# `lab verify` alone before and during for comparison, the host's memory
# sampled each second and the containers' memory once all are up.
#
#   bash benches/class-scale.sh [N=30] [LAB=target/debug/lab]
#
# Each student gets their own copy of the reference solution (the build cache
# is keyed by content: it is built once). Figures go to stdout; the run's
# files stay in the printed folder.
set -u
cd "$(dirname "$0")/.."
N=${1:-30}
L=$(realpath "${2:-target/debug/lab}")
export LAB_PATH=$PWD/labs LAB_IMAGES=${LAB_IMAGES:-debian} NO_COLOR=1
S=$PWD/tests/solutions/url-shortener
W=$(mktemp -d /tmp/lab-class-scale.XXXX)
{ echo "id,name"; for i in $(seq 1 "$N"); do echo "c$i,Student $i"; done; } >"$W/roster.csv"
mkdir -p "$W/sol"
for i in $(seq 1 "$N"); do cp -r "$S" "$W/sol/c$i"; done
( while true; do echo "$(date +%s) $(free -m | awk '/Mem:/{print $3}')"; sleep 1; done ) >"$W/mem.log" &
MP=$!
trap 'kill $MP 2>/dev/null; "$L" class down url-shortener --yes --roster "$W/roster.csv" >/dev/null 2>&1; "$L" down url-shortener --student solo >/dev/null 2>&1' EXIT
t() { local out=$1; shift; local t0; t0=$(date +%s.%N); "$@" >"$W/$out" 2>&1; local rc=$?; printf '%-14s %6.1f s  exit %s\n' "$out" "$(echo "$(date +%s.%N) - $t0" | bc)" "$rc"; }
t solo-before "$L" verify url-shortener --student solo --solution "$S" --quiet
t class-up "$L" class up url-shortener --roster "$W/roster.csv" --solutions "$W/sol" --jobs 4
docker stats --no-stream --format '{{.MemUsage}}' | awk '{v=$1; if (v ~ /GiB/) {sub("GiB","",v); v*=1024} else if (v ~ /MiB/) sub("MiB","",v); else {sub("[kK]iB","",v); v/=1024}; s+=v} END{printf "containers     %d, %.0f MiB in all\n", NR, s}'
t solo-during "$L" verify url-shortener --student solo --solution "$S" --quiet
t class-verify "$L" class verify url-shortener --roster "$W/roster.csv" --solutions "$W/sol" --jobs 4
t class-status "$L" class status url-shortener --roster "$W/roster.csv"
t class-down "$L" class down url-shortener --yes --roster "$W/roster.csv"
kill $MP
each() { grep -o "$1 [0-9.]* s" "$W/$2" | awk '{print $(NF-1)}' | sort -n | awk -v w="$3" '{a[NR]=$1} END{if (NR) printf "%-14s n=%d min %.1f s, median %.1f s, max %.1f s\n", w, NR, a[1], a[int((NR+1)/2)], a[NR]}'; }
each "up in" class-up "each up"
each "passed in" class-verify "each verify"
awk 'NR==1{b=$2} {if ($2>m) m=$2} END{printf "host memory    %d MiB used at the start, %d MiB at most\n", b, m}' "$W/mem.log"
echo "left: $(docker ps -aq --filter label=lab.lab=url-shortener | wc -l) containers, $(docker network ls -q --filter label=lab.lab=url-shortener | wc -l) networks; files in $W"
