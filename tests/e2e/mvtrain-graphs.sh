# mvtrain --graphs: each layer's forward and backward captured once and replayed with cuGraphLaunch,
# with either allocator (--alloc async puts each piece's temporaries in the graph as memory nodes),
# trains to the plain run's checksum, bit for bit: alone, and under every policy at half and a third
# of the plain run's peak (VGG-16: half and 40%, since at a third its warm-up step, an eager step,
# cannot hold its second convolution's buffers at once). The replayed steps must page (mvtrain
# reads memvirt's page-out counter around them), nothing may be pinned for good, and the safety
# net is off, so a buffer a graph names but memvirt left out faults.
. "$(dirname "$0")/lib.sh"
: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
mv_need_mvtrain
mv_tmpdir
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"

SIMCUDA_MEM=4GiB
SIMCUDA_GRANULARITY=4KiB
export SIMCUDA_MEM SIMCUDA_GRANULARITY
unset SIMCUDA_MODEL_ONLY SIMCUDA_NO_HOST_VMM LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_RECORD
unset MEMVIRT_HOST_LIMIT MEMVIRT_REAL_LIBCUDA MEMVIRT_POLICY MEMVIRT_ITERATION_MARKER
MEMVIRT_DAEMON=off
MEMVIRT_SAFETY_NET=off
export MEMVIRT_DAEMON MEMVIRT_SAFETY_NET
# A warm-up step, a capturing step, and replays enough for the policies to learn and follow.
STEPS=6
POLICIES="lru vdnn-all vdnn-conv mmcnn auto"

# gr_line NAME FORMAT: the number a run's "graphs:" line gives in FORMAT's place of N.
gr_line() {
	sed -n "s/^graphs: $2\$/\\1/p" "$MV_TMP/$1.out"
}

# Plain runs, then the same with graphs and no memvirt: the same checksum. With --alloc async
# the pieces have temporaries, each a memory node; with sync, none.
for spec in "vgg16 8 0.125" "resnet50 2 0.125"; do
	set -- $spec
	mv_run "$1" --model "$1" --batch "$2" --scale "$3" --steps "$STEPS"
	mv_expect_ok "$1" "$STEPS"
	for alloc in sync async; do
		name=$1-graphs-$alloc
		mv_run "$name" --model "$1" --batch "$2" --scale "$3" --steps "$STEPS" --graphs --alloc "$alloc"
		mv_expect_ok "$name" "$STEPS"
		[ "$(mv_checksum "$name")" = "$(mv_checksum "$1")" ] ||
			mv_fail_run "$name" "checksum $(mv_checksum "$name"), the plain run's is $(mv_checksum "$1")"
		nodes=$(gr_line "$name" '[0-9]* pieces, [0-9]* buffers, \([0-9]*\) memory nodes')
		pieces=$(gr_line "$name" '\([0-9]*\) pieces, .*')
		[ -n "$pieces" ] && [ "$pieces" -gt 10 ] || mv_fail_run "$name" "pieces '$pieces', expected more than 10"
		if [ "$alloc" = async ]; then
			[ -n "$nodes" ] && [ "$nodes" -gt 0 ] || mv_fail_run "$name" "memory nodes '$nodes', expected some"
		else
			[ "$nodes" = 0 ] || mv_fail_run "$name" "memory nodes '$nodes' with --alloc sync, expected 0"
		fi
	done
done

# The other two models' pieces, without memvirt.
for spec in "transformer 2 0.03125" "lstm 16 0.0625"; do
	set -- $spec
	mv_run "$1" --model "$1" --batch "$2" --scale "$3" --steps 3
	mv_expect_ok "$1" 3
	mv_run "$1-graphs" --model "$1" --batch "$2" --scale "$3" --steps 3 --graphs --alloc async
	mv_expect_ok "$1-graphs" 3
	[ "$(mv_checksum "$1-graphs")" = "$(mv_checksum "$1")" ] ||
		mv_fail_run "$1-graphs" "checksum $(mv_checksum "$1-graphs"), the plain run's is $(mv_checksum "$1")"
done

# The capture modes: the library must not invalidate a global-mode capture either.
for mode in global relaxed; do
	mv_run "mode-$mode" --model resnet50 --batch 2 --scale 0.125 --steps 3 --graphs="$mode" --alloc async
	mv_expect_ok "mode-$mode" 3
done
mv_run bad --model resnet50 --graphs=sometimes
[ "$MV_RC" -eq 2 ] && grep -q "'sometimes'" "$MV_TMP/bad.err" || mv_fail_run bad "a bad mode is not refused by name"
mv_run bad --model resnet50 --graphs --stream legacy
[ "$MV_RC" -eq 2 ] || mv_fail_run bad "--graphs with --stream legacy exits $MV_RC, expected 2"

# A sanitizer build looks for memory and thread errors, not for each policy's outcome: there, only
# the tighter budget of each model and only lru and auto, which keeps the suite's time in bounds.
[ -z "${MV_SANITIZER:-}" ] || POLICIES="lru auto"
runs=""
for spec in "vgg16 8 0.125 50 40" "resnet50 2 0.125 50 33"; do
	set -- $spec
	model=$1 batch=$2 scale=$3
	peak=$(mv_peak "$model")
	[ -n "$peak" ] && [ "$peak" -gt 0 ] || mv_fail_run "$model" "no peak in the output"
	pcts="$4 $5"
	[ -z "${MV_SANITIZER:-}" ] || pcts=$5
	for pct in $pcts; do
		for alloc in sync async; do
			for policy in $POLICIES; do
				name=$model-$policy-$pct-$alloc
				mv_policy_run "$name" "$policy" $((peak * pct / 100)) --model "$model" --batch "$batch" \
					--scale "$scale" --steps "$STEPS" --graphs --alloc "$alloc"
				runs="$runs $name"
			done
			# The policies run side by side.
			wait
		done
	done
done
wait

for name in $runs; do
	model=${name%%-*}
	rc=$(cat "$MV_TMP/$name.rc")
	outs=$(gr_line "$name" 'the replayed steps paged out \([0-9]*\) and in [0-9]* buffers')
	echo "$name: exit $rc, replayed steps paged out ${outs:-?}"
	[ "$rc" -eq 0 ] || mv_fail_run "$name" "exit status $rc, expected 0"
	[ "$(mv_checksum "$name")" = "$(mv_checksum "$model")" ] ||
		mv_fail_run "$name" "checksum '$(mv_checksum "$name")', the plain run's is $(mv_checksum "$model")"
	[ -n "$outs" ] && [ "$outs" -gt 0 ] || mv_fail_run "$name" "the replayed steps paged out '$outs' buffers"
	grep -q "pinned for good" "$MV_TMP/$name.err" && mv_fail_run "$name" "graph buffers were pinned for good"
	grep -q memvirt "$MV_TMP/$name.out" && mv_fail_run "$name" "the library wrote to stdout"
done
exit 0
