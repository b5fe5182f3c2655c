# tests/fuzz/: libFuzzer targets and their seed corpora. Included by the top Makefile.am.
# The targets need clang's libFuzzer, not the build's compiler, so scripts/fuzz builds and runs them
# (scripts/test does, briefly); the make build only distributes them.
EXTRA_DIST += \
	tests/fuzz/fuzz.h \
	tests/fuzz/fuzz_frame.c \
	tests/fuzz/fuzz_control.c \
	tests/fuzz/fuzz_config.c \
	tests/fuzz/fuzz_units.c \
	tests/fuzz/fuzz_trace.c \
	tests/fuzz/corpus
