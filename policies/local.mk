# policies/: planning code with no I/O, linked into libmemvirt.so, memvirtd and memvirt. Included by
# the top Makefile.am.
