# tests/fuzz/: libFuzzer targets and their seed corpora. Included by the top Makefile.am.
