# Fault tests: device faults on the simulated GPU and process faults against the daemon. Included by
# the top Makefile.am.

# libmemvirt.so under device faults injected on the simulated GPU.
FAULT_CHECKS = tests/unit/check_interpose_faults
check_PROGRAMS += $(FAULT_CHECKS)
TESTS += $(FAULT_CHECKS)
tests_unit_check_interpose_faults_SOURCES = tests/unit/check_interpose_faults.c
tests_unit_check_interpose_faults_CFLAGS = $(CHECK_CFLAGS_ALL)
tests_unit_check_interpose_faults_LDADD = $(CHECK_LDADD_ALL) -ldl
$(FAULT_CHECKS): interpose/libmemvirt.la

# Process faults (jobs and the daemon killed, many clients, a flooding client) and a training job
# under device faults.
FAULT_E2E_TESTS = \
	tests/e2e/fault-kill-pageout.sh \
	tests/e2e/fault-daemon-restart.sh \
	tests/e2e/fault-many-clients.sh \
	tests/e2e/fault-flood.sh \
	tests/e2e/fault-mvtrain.sh
TESTS += $(FAULT_E2E_TESTS)
EXTRA_DIST += $(FAULT_E2E_TESTS)

# Raw frames from the shell, shared with daemon-garbage.sh.
EXTRA_DIST += tests/e2e/frame-lib.sh
