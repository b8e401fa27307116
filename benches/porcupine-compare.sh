#!/usr/bin/env bash
# Side-by-side timing of `lab check linearizability` and Porcupine (the Go
# linearizability checker) on the same histories. See the doc comment of
# benches/linearizability.rs for the history format and the model.
#
#   benches/porcupine-compare.sh PORCUPINE_SRC [--sizes 1000,10000,100000] [--reps 3] [--budget 120] [--cases multi-key,single-key] [--no-test-data]
#
# PORCUPINE_SRC is a checkout of github.com/anishathalye/porcupine; this
# script fetches nothing. It builds a small driver of ours against it in a
# temporary folder (nothing of it is written to the repository), builds lab in
# release mode (or uses $LAB), writes the benchmark's seeded histories
# (BENCH_HISTORY_DIR) and runs both checkers on every history, --reps times
# each, printing the median wall time of the whole process (start, reading and
# parsing the file included), timed by hyperfine when it is installed
# (`apt-get install hyperfine`; each run spawned directly, no shell). Porcupine's own test_data (Jepsen etcd logs, kv
# logs) is run too unless --no-test-data. Both get the same time budget;
# a run that does not finish within it reports `unknown`.
#
# Environment: GO (default: go on PATH, else /usr/lib/go-1.23/bin/go), LAB (a
# lab binary; default: cargo build --release), KEEP=1 keeps the temp folder.
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
PSRC=$(cd "$1" && pwd) || usage
shift
SIZES=1000,10000,100000
REPS=3
BUDGET=120
CASES=multi-key,single-key,single-key-5-values,single-key-timeouts,single-key-stale-read
TEST_DATA=1
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        --cases) CASES=$2; shift 2 ;;
        --no-test-data) TEST_DATA=0; shift ;;
        *) usage ;;
    esac
done
[ -f "$PSRC/porcupine.go" ] || { echo "$PSRC does not look like a Porcupine checkout" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-$(command -v go || echo /usr/lib/go-1.23/bin/go)}
WORK=$(mktemp -d /tmp/porcupine-compare.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

# --- the driver (our code; it only calls Porcupine's public API) ---
mkdir -p "$WORK/driver"
cat > "$WORK/driver/go.mod" <<EOF
module compare

go 1.16

require github.com/anishathalye/porcupine v0.0.0
replace github.com/anishathalye/porcupine => $PSRC
EOF
cat > "$WORK/driver/main.go" <<'EOF'
// Runs one history through the peer checker and prints "verdict check_ms total_ms ops".
// Formats: a JSON list of {client_id, input, call, output, return} (register, by key),
// jepsen.util log lines (one register), and EDN lines of get/put/append on string keys.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

const nilValue = int64(-1 << 62)

type regIn struct {
	op       byte // 'r', 'w', 'c'
	key      string
	value    int64
	from, to int64
}

type regOut struct {
	ok, unknown bool
	value       int64
}

func partitionByKey(key func(interface{}) string) func([]porcupine.Operation) [][]porcupine.Operation {
	return func(h []porcupine.Operation) [][]porcupine.Operation {
		m := map[string][]porcupine.Operation{}
		var keys []string
		for _, o := range h {
			k := key(o.Input)
			if _, seen := m[k]; !seen {
				keys = append(keys, k)
			}
			m[k] = append(m[k], o)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, m[k])
		}
		return out
	}
}

var registerModel = porcupine.Model{
	Partition: partitionByKey(func(i interface{}) string { return i.(regIn).key }),
	Init:      func() interface{} { return nilValue },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st := state.(int64)
		in := input.(regIn)
		out := output.(regOut)
		switch in.op {
		case 'r':
			return out.unknown || out.value == st, st
		case 'w':
			return true, in.value
		default:
			if out.unknown {
				if st == in.from {
					return true, in.to
				}
				return true, st
			}
			if out.ok {
				return st == in.from, in.to
			}
			return st != in.from, st
		}
	},
	Equal: func(a, b interface{}) bool { return a.(int64) == b.(int64) },
}

type kvIn struct {
	op         byte // 'g', 'p', 'a'
	key, value string
}

var kvModel = porcupine.Model{
	Partition: partitionByKey(func(i interface{}) string { return i.(kvIn).key }),
	Init:      func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st := state.(string)
		in := input.(kvIn)
		switch in.op {
		case 'g':
			return output.(string) == st, st
		case 'p':
			return true, in.value
		default:
			return true, st + in.value
		}
	},
	Hash: func(s interface{}) uint64 {
		h := fnv.New64a()
		h.Write([]byte(s.(string)))
		return h.Sum64()
	},
	Equal: func(a, b interface{}) bool { return a.(string) == b.(string) },
}

type jsonOp struct {
	ClientID int `json:"client_id"`
	Input    struct {
		Op    string `json:"op"`
		Key   string `json:"key"`
		Value *int64 `json:"value"`
		From  *int64 `json:"from"`
		To    *int64 `json:"to"`
	} `json:"input"`
	Call   int64 `json:"call"`
	Output struct {
		Ok      bool   `json:"ok"`
		Unknown bool   `json:"unknown"`
		Value   *int64 `json:"value"`
	} `json:"output"`
	Return int64 `json:"return"`
}

func val(p *int64) int64 {
	if p == nil {
		return nilValue
	}
	return *p
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}

func parseJSON(data []byte) []porcupine.Operation {
	var raw []jsonOp
	if err := json.Unmarshal(data, &raw); err != nil {
		fail("bad JSON: %v", err)
	}
	ops := make([]porcupine.Operation, 0, len(raw))
	for _, r := range raw {
		in := regIn{key: r.Input.Key}
		switch r.Input.Op {
		case "read", "get":
			in.op = 'r'
		case "write", "put":
			in.op, in.value = 'w', val(r.Input.Value)
		case "cas":
			in.op, in.from, in.to = 'c', val(r.Input.From), val(r.Input.To)
		default:
			fail("unknown op %q", r.Input.Op)
		}
		out := regOut{ok: r.Output.Ok, unknown: r.Output.Unknown, value: val(r.Output.Value)}
		ops = append(ops, porcupine.Operation{ClientId: r.ClientID, Input: in, Call: r.Call, Output: out, Return: r.Return})
	}
	return ops
}

// Timestamps are line numbers; operations that never completed return after everything.
type pending struct {
	op   porcupine.Operation
	open bool
}

func parseLines(data []byte, fn func(line string, call func(proc int, in interface{}), ret func(proc int, out interface{}))) []porcupine.Operation {
	var ops []porcupine.Operation
	open := map[int]int{}
	t := int64(0)
	call := func(proc int, in interface{}) {
		ops = append(ops, porcupine.Operation{ClientId: proc, Input: in, Call: t})
		open[proc] = len(ops) - 1
	}
	ret := func(proc int, out interface{}) {
		i, ok := open[proc]
		if !ok {
			fail("return without call for process %d at line %d", proc, t)
		}
		delete(open, proc)
		ops[i].Output, ops[i].Return = out, t
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		t++
		fn(sc.Text(), call, ret)
	}
	end := t + 1
	for _, i := range open {
		ops[i].Return = end
		if ops[i].Output == nil {
			switch ops[i].Input.(type) {
			case regIn:
				ops[i].Output = regOut{unknown: true}
			}
		}
	}
	return ops
}

var (
	jInvRead  = regexp.MustCompile(`^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:invoke\s+:read\s+nil$`)
	jInvWrite = regexp.MustCompile(`^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:invoke\s+:write\s+(\d+)$`)
	jInvCas   = regexp.MustCompile(`^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:invoke\s+:cas\s+\[(\d+)\s+(\d+)\]$`)
	jOkRead   = regexp.MustCompile(`^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:ok\s+:read\s+(nil|\d+)$`)
	jOkWrite  = regexp.MustCompile(`^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:ok\s+:write\s+(\d+)$`)
	jRetCas   = regexp.MustCompile(`^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(ok|fail)\s+:cas\s+\[(\d+)\s+(\d+)\]$`)
	jFailRead = regexp.MustCompile(`^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:fail\s+:read\s+:timed-out$`)
)

func atoi(s string) int64 {
	if s == "nil" {
		return nilValue
	}
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

func jepsenLine(line string, call func(int, interface{}), ret func(int, interface{})) {
	proc := func(m []string) int { p, _ := strconv.Atoi(m[1]); return p }
	if m := jInvRead.FindStringSubmatch(line); m != nil {
		call(proc(m), regIn{op: 'r'})
	} else if m := jInvWrite.FindStringSubmatch(line); m != nil {
		call(proc(m), regIn{op: 'w', value: atoi(m[2])})
	} else if m := jInvCas.FindStringSubmatch(line); m != nil {
		call(proc(m), regIn{op: 'c', from: atoi(m[2]), to: atoi(m[3])})
	} else if m := jOkRead.FindStringSubmatch(line); m != nil {
		ret(proc(m), regOut{ok: true, value: atoi(m[2])})
	} else if m := jOkWrite.FindStringSubmatch(line); m != nil {
		ret(proc(m), regOut{ok: true})
	} else if m := jRetCas.FindStringSubmatch(line); m != nil {
		ret(proc(m), regOut{ok: m[2] == "ok"})
	} else if m := jFailRead.FindStringSubmatch(line); m != nil {
		ret(proc(m), regOut{unknown: true})
	}
}

var (
	kvInvoke = regexp.MustCompile(`^\{:process (\d+), :type :invoke, :f :(get|put|append), :key "(.*)", :value (nil|"(.*)")\}$`)
	kvOk     = regexp.MustCompile(`^\{:process (\d+), :type :ok, :f :(get|put|append), :key "(.*)", :value (nil|"(.*)")\}$`)
)

func kvLine(line string, call func(int, interface{}), ret func(int, interface{})) {
	if m := kvInvoke.FindStringSubmatch(line); m != nil {
		p, _ := strconv.Atoi(m[1])
		call(p, kvIn{op: m[2][0], key: m[3], value: m[5]})
	} else if m := kvOk.FindStringSubmatch(line); m != nil {
		p, _ := strconv.Atoi(m[1])
		ret(p, m[5])
	}
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: driver FILE [timeout-seconds]")
	}
	timeout := 0 * time.Second
	if len(os.Args) > 2 {
		s, err := strconv.ParseFloat(os.Args[2], 64)
		if err != nil {
			fail("bad timeout %q", os.Args[2])
		}
		timeout = time.Duration(s * float64(time.Second))
	}
	t0 := time.Now()
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	text := strings.TrimSpace(string(data))
	var ops []porcupine.Operation
	model := registerModel
	switch {
	case strings.HasPrefix(text, "["):
		ops = parseJSON(data)
	case strings.HasPrefix(text, "INFO"):
		ops = parseLines(data, jepsenLine)
	case strings.HasPrefix(text, "{:process"):
		ops = parseLines(data, kvLine)
		for i := range ops {
			if ops[i].Output == nil {
				ops[i].Output = "" // a get that never returned: Porcupine's kv test does the same
			}
		}
		model = kvModel
	default:
		fail("unknown format")
	}
	t1 := time.Now()
	res := porcupine.CheckOperationsTimeout(model, ops, timeout)
	t2 := time.Now()
	verdict := map[porcupine.CheckResult]string{porcupine.Ok: "valid", porcupine.Illegal: "invalid", porcupine.Unknown: "unknown"}[res]
	fmt.Printf("%s %.3f %.3f %d\n", verdict, float64(t2.Sub(t1).Microseconds())/1e3, float64(t2.Sub(t0).Microseconds())/1e3, len(ops))
}
EOF
echo "building the driver ($("$GO" version))" >&2
(cd "$WORK/driver" && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOCACHE=${GOCACHE:-$WORK/gocache} "$GO" build -o "$WORK/pdriver" .)

# --- lab ---
if [ -z "${LAB:-}" ]; then
    echo "building lab (release)" >&2
    (cd "$REPO" && cargo build --release --quiet --bin lab)
    LAB=$REPO/target/release/lab
fi

# --- histories ---
echo "writing histories (sizes $SIZES)" >&2
(cd "$REPO" && BENCH_HISTORY_DIR="$WORK/h" BENCH_WRITE_ONLY=1 BENCH_SIZES="$SIZES" cargo bench --quiet --bench linearizability >/dev/null)

now_ms() { date +%s%N; }
HYPERFINE=$(command -v hyperfine || true)
# Runs "$@" and sets WALL (ms) and CODE / OUT.
timed() {
    local s e
    s=$(now_ms)
    set +e
    OUT=$(timeout $((BUDGET + 60)) "$@" 2>/dev/null)
    CODE=$?
    set -e
    e=$(now_ms)
    WALL=$(( (e - s) / 1000 ))
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
lab_verdict() { case $1 in 0) echo valid ;; 1) echo invalid ;; 5) echo unknown ;; 124) echo killed ;; *) echo "error($1)" ;; esac; }
drv_verdict() { if [ "$1" = 124 ]; then echo killed; elif [ "$1" != 0 ]; then echo "error($1)"; else echo "${2%% *}"; fi; }
fmt_ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
rate() { awk -v n="$1" -v us="$2" 'BEGIN { r = n / (us / 1e6); if (r >= 1e6) printf "%.2f M/s", r / 1e6; else printf "%.0f k/s", r / 1e3 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", b / a }'; }

AGREE=0
DISAGREE=0
row() { # name ops lab_us lab_verdict porc_us porc_verdict
    local mark=""
    if [ "$4" = "$6" ]; then AGREE=$((AGREE + 1)); else DISAGREE=$((DISAGREE + 1)); mark=" (differ)"; fi
    printf '| %-28s | %7s | %10s | %10s | %11s | %11s | %7s | %s / %s%s |\n' "$1" "$2" "$(fmt_ms "$3")" "$(fmt_ms "$5")" "$(rate "$2" "$3")" "$(rate "$2" "$5")" "$(ratio "$3" "$5")" "$4" "$6" "$mark"
}
# measure VERDICT FIRST_US CMD...: the median wall time (us) of REPS runs of
# CMD. With hyperfine (Debian's package), each run is spawned directly and
# timed by it (no shell, no timeout wrapper: that adds about 3 ms to every
# run, which hides differences on small histories); a run that did not finish
# the first time (killed, unknown) keeps that first time. Without hyperfine,
# REPS more runs through `timed`.
measure() {
    local verdict=$1 first=$2 t="" i
    shift 2
    case $verdict in killed | unknown) echo "$first"; return ;; esac
    if [ -n "$HYPERFINE" ]; then
        "$HYPERFINE" -N -i --style none --warmup 1 --runs "$REPS" --export-json "$WORK/hf.json" "$*" >/dev/null 2>&1
        python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["results"][0]["median"] * 1e6))' "$WORK/hf.json"
        return
    fi
    t=$first
    for ((i = 1; i < REPS; i++)); do
        timed "$@"
        t="$t $WALL"
    done
    echo "$t" | median
}
# compare NAME OPS FILE: the verdicts of one run of each checker, then the
# median wall time of REPS runs of each.
compare() {
    local lv dv lab_first drv_first
    timed "$LAB" check linearizability --budget "${BUDGET}s" "$3"
    lab_first=$WALL lv=$(lab_verdict $CODE)
    timed "$WORK/pdriver" "$3" "$BUDGET"
    drv_first=$WALL dv=$(drv_verdict $CODE "$OUT")
    row "$1" "$2" "$(measure "$lv" "$lab_first" "$LAB" check linearizability --budget "${BUDGET}s" "$3")" "$lv" \
        "$(measure "$dv" "$drv_first" "$WORK/pdriver" "$3" "$BUDGET")" "$dv"
}

echo "$(nproc) cores; load: $(uptime | sed 's/.*load average/load average/'); lab: $LAB; Porcupine: $(git -C "$PSRC" rev-parse --short HEAD 2>/dev/null || echo "$PSRC"); budget ${BUDGET}s; median of $REPS runs, wall time of the whole process, timed by $([ -n "$HYPERFINE" ] && echo hyperfine || echo the shell)"
echo
echo '| history                      |     ops |     lab ms | porcupine ms |   lab ops/s | porc. ops/s | speed-up | verdicts lab / porcupine |'
echo '|------------------------------|--------:|-----------:|-----------:|------------:|------------:|--------:|---------------------------|'
IFS=, read -ra case_list <<< "$CASES"
IFS=, read -ra size_list <<< "$SIZES"
for c in "${case_list[@]}"; do
    for n in "${size_list[@]}"; do
        f="$WORK/h/$c-$n.porcupine.json"
        [ -f "$f" ] || { echo "no history $f" >&2; continue; }
        compare "$c" "$n" "$f"
    done
done

if [ "$TEST_DATA" = 1 ]; then
    for f in "$PSRC"/test_data/kv/*.txt; do
        [ -f "$f" ] || continue
        compare "kv/$(basename "$f" .txt)" "$(grep -c ':type :invoke' "$f")" "$f"
    done
    # The Jepsen etcd logs: each is small, so the total over all of them.
    logs=("$PSRC"/test_data/jepsen/*.log)
    if [ -f "${logs[0]}" ]; then
        ops=$(cat "${logs[@]}" | grep -c ':invoke')
        lab_tot=0 drv_tot=0 lab_v="" drv_v=""
        for f in "${logs[@]}"; do
            timed "$LAB" check linearizability --budget "${BUDGET}s" "$f"
            lv=$(lab_verdict $CODE) lab_first=$WALL
            timed "$WORK/pdriver" "$f" "$BUDGET"
            dv=$(drv_verdict $CODE "$OUT") drv_first=$WALL
            lab_tot=$((lab_tot + $(measure "$lv" "$lab_first" "$LAB" check linearizability --budget "${BUDGET}s" "$f")))
            drv_tot=$((drv_tot + $(measure "$dv" "$drv_first" "$WORK/pdriver" "$f" "$BUDGET")))
            lab_v="$lab_v$lv " drv_v="$drv_v$dv "
        done
        same=0
        read -ra la <<< "$lab_v"
        read -ra da <<< "$drv_v"
        for ((i = 0; i < ${#la[@]}; i++)); do [ "${la[$i]}" = "${da[$i]}" ] && same=$((same + 1)); done
        summary() { echo "$1" | tr ' ' '\n' | grep -v '^$' | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}'; }
        row "jepsen etcd (${#logs[@]} logs, total)" "$ops" "$lab_tot" "$same/${#logs[@]} agree" "$drv_tot" "$same/${#logs[@]} agree"
        echo
        echo "jepsen etcd verdicts: lab $(summary "$lab_v"); Porcupine $(summary "$drv_v")"
    fi
fi
echo
echo "verdicts: $AGREE rows agree, $DISAGREE differ; load after: $(uptime | sed 's/.*load average/load average/')"
