# Fault tests: device faults on the simulated GPU and process faults against the daemon. Included by
# the top Makefile.am.
