# policies/: planning code with no I/O, linked into libmemvirt.so, memvirtd and memvirt. Included by
# the top Makefile.am.
POLICY_SOURCES = \
	policies/policy.h \
	policies/trace.h \
	policies/trace.c \
	policies/map.h \
	policies/map.c \
	policies/learn.h \
	policies/learn.c \
	policies/iter.c \
	policies/plan.c \
	policies/model.c \
	policies/bound.c \
	policies/uvm.c \
	policies/policy.c \
	policies/params.c \
	policies/lru.c \
	policies/vdnn-all.c \
	policies/vdnn-conv.c \
	policies/mmcnn.c \
	policies/auto.c

# Unit suites of the planning code, on synthetic traces from tests/unit/policytest.h.
POLICY_CHECKS = \
	tests/unit/check_trace \
	tests/unit/check_learn \
	tests/unit/check_iter \
	tests/unit/check_model \
	tests/unit/check_params \
	tests/unit/check_policy_vdnn \
	tests/unit/check_policy_mmcnn \
	tests/unit/check_policy_feedback
check_PROGRAMS += $(POLICY_CHECKS)
TESTS += $(POLICY_CHECKS)
EXTRA_DIST += tests/unit/policytest.h

tests_unit_check_trace_SOURCES = tests/unit/check_trace.c
tests_unit_check_trace_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_check_trace_LDADD = $(POLICY_LIB) $(CHECK_LIBS) -lm
tests_unit_check_learn_SOURCES = tests/unit/check_learn.c
tests_unit_check_learn_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_check_learn_LDADD = $(POLICY_LIB) $(CHECK_LIBS) -lm
tests_unit_check_iter_SOURCES = tests/unit/check_iter.c
tests_unit_check_iter_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_check_iter_LDADD = $(POLICY_LIB) $(CHECK_LIBS) -lm
tests_unit_check_model_SOURCES = tests/unit/check_model.c
tests_unit_check_model_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_check_model_LDADD = $(POLICY_LIB) $(CHECK_LIBS) -lm
tests_unit_check_params_SOURCES = tests/unit/check_params.c
tests_unit_check_params_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_check_params_LDADD = $(POLICY_LIB) $(PROTO_LIB) $(CHECK_LIBS) -lm
tests_unit_check_policy_vdnn_SOURCES = tests/unit/check_policy_vdnn.c
tests_unit_check_policy_vdnn_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_check_policy_vdnn_LDADD = $(POLICY_LIB) $(CHECK_LIBS) -lm
tests_unit_check_policy_mmcnn_SOURCES = tests/unit/check_policy_mmcnn.c
tests_unit_check_policy_mmcnn_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_check_policy_mmcnn_LDADD = $(POLICY_LIB) $(CHECK_LIBS) -lm
tests_unit_check_policy_feedback_SOURCES = tests/unit/check_policy_feedback.c
tests_unit_check_policy_feedback_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_check_policy_feedback_LDADD = $(POLICY_LIB) $(CHECK_LIBS) -lm

# Planning time per policy on a 10,000-launch iteration; run by scripts/bench planning.
check_PROGRAMS += tests/bench/plan_bench
tests_bench_plan_bench_SOURCES = tests/bench/plan_bench.c $(POLICY_SOURCES) protocol/units.c
tests_bench_plan_bench_CFLAGS = $(AM_CFLAGS) -O2
tests_bench_plan_bench_LDADD = -lm
EXTRA_DIST += tests/bench/planning.sh tests/bench/policies.sh
