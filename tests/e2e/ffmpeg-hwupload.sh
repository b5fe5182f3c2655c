# A second real client nobody here wrote: Debian's ffmpeg uploads frames with hwupload_cuda (device
# frames from cuMemAlloc, filled with cuMemcpy2DAsync from pageable host memory), holds them all on
# the device (reverse) and downloads them with hwdownload. On the simulated driver, plain and under
# `memvirt run` with a budget of a quarter of the frames, the output matches the same frames made
# without the device byte for byte; under memvirt the frames were paged out and in.
. "$(dirname "$0")/lib.sh"
mv_tmpdir
simdir=$MV_TOP_BUILDDIR/tests/simcuda
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
[ -f "$simdir/libcuda.so.1" ] || mv_fail "$simdir/libcuda.so.1 is not built"
unset MEMVIRT_BUDGET MEMVIRT_LOG_FILE MEMVIRT_SAFETY_NET LD_PRELOAD

ff=$(command -v ffmpeg 2>/dev/null) || mv_skip "ffmpeg is not installed (scripts/setup installs it)"
"$ff" -hide_banner -filters 2>/dev/null | grep -q ' hwupload_cuda ' || mv_skip "this ffmpeg has no hwupload_cuda"
LD_LIBRARY_PATH=$simdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
cd "$MV_TMP" || mv_fail "cannot enter $MV_TMP"

# 24 frames of 1280x720 NV12, 1.3 MiB each: above the library's slab threshold, so each is paged.
frames=24
src=testsrc2=size=1280x720:rate=10:duration=2.4
fsize=$((1280 * 720 * 3 / 2))
hw=format=nv12,hwupload_cuda,reverse,hwdownload,format=nv12,reverse
run_ff() { # OUT FILTERS [ffmpeg options before the input]
	out=$1 vf=$2
	shift 2
	timeout 120 "$ff" -hide_banner -nostdin -y -loglevel error "$@" -f lavfi -i "$src" -vf "$vf" -f rawvideo "$out"
}
hwdev="-init_hw_device cuda=cu:0 -filter_hw_device cu"

rc=0
run_ff ref.yuv format=nv12 >ref.log 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat ref.log >&2; mv_fail "ffmpeg without the device: exit $rc"; }
[ "$(wc -c <ref.yuv)" -eq $((frames * fsize)) ] || mv_fail "reference holds $(wc -c <ref.yuv) bytes, expected $frames frames"

# shellcheck disable=SC2086
run_ff plain.yuv "$hw" $hwdev >plain.log 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat plain.log >&2; mv_fail "ffmpeg on the simulated driver: exit $rc"; }
cmp ref.yuv plain.yuv >&2 || mv_fail "frames through the simulated device differ from the reference"
! grep -q 'is not modelled' plain.log || { cat plain.log >&2; mv_fail "ffmpeg called an entry point simcuda does not model"; }
echo "plain: $frames frames through the device, byte-identical"

budget=$((frames * fsize / 4))
# shellcheck disable=SC2086
MEMVIRT_LOG=info timeout 180 "$MEMVIRT" run --simulate --socket "$MV_TMP/memvirtd.sock" --budget "$budget" -- \
	"$ff" -hide_banner -nostdin -y -loglevel error $hwdev -f lavfi -i "$src" -vf "$hw" -f rawvideo mv.yuv \
	>mv.out 2>mv.err || rc=$?
[ "$rc" -eq 0 ] || { cat mv.err >&2; mv_fail "under memvirt at $budget bytes: exit $rc"; }
cmp ref.yuv mv.yuv >&2 || { cat mv.err >&2; mv_fail "under memvirt at $budget bytes the frames differ from the reference"; }
summary=$(grep -E '^memvirt\[[0-9]+\] info: budget ' mv.err | tail -n 1)
outs=$(echo "$summary" | sed -n 's/.* page-outs \([0-9]*\) .*/\1/p')
ins=$(echo "$summary" | sed -n 's/.* page-ins \([0-9]*\) .*/\1/p')
oom=$(echo "$summary" | sed -n 's/.* out-of-memory \([0-9]*\);.*/\1/p')
[ "${outs:-0}" -gt 0 ] && [ "${ins:-0}" -gt 0 ] ||
	{ cat mv.err >&2; mv_fail "under memvirt nothing was paged (page-outs '$outs', page-ins '$ins')"; }
[ "$oom" = 0 ] || { cat mv.err >&2; mv_fail "under memvirt out-of-memory is '$oom', expected 0"; }
echo "memvirt at $budget bytes: $frames frames byte-identical, $outs page-outs, $ins page-ins"
exit 0
