/* What procaddr.c and stubs.c share without cuda.h: the trampoline macro and the stubs' lookup. */
#ifndef SIMCUDA_STUBS_H
#define SIMCUDA_STUBS_H

/* simtr_SYM: a hidden function that jumps to SYM, so cuGetProcAddress hands out an address that is
 * not the exported symbol's, as a real driver's may be. */
#if defined(__x86_64__)
#define SIM_TRAMP(sym) \
	__asm__(".text\n.p2align 4\n.globl simtr_" #sym "\n.hidden simtr_" #sym "\n.type simtr_" #sym \
		", @function\nsimtr_" #sym ":\n\tjmp " #sym "\n.size simtr_" #sym ", .-simtr_" #sym "\n");
#elif defined(__aarch64__)
#define SIM_TRAMP(sym) \
	__asm__(".text\n.p2align 4\n.globl simtr_" #sym "\n.hidden simtr_" #sym "\n.type simtr_" #sym \
		", %function\nsimtr_" #sym ":\n\tb " #sym "\n.size simtr_" #sym ", .-simtr_" #sym "\n");
#else
#error "no trampoline for this architecture"
#endif

/* The trampoline of a real driver entry point that simcuda exports only as a stub answering
 * CUDA_ERROR_NOT_SUPPORTED, or NULL when the name is not one of them. */
__attribute__((visibility("hidden"))) void (*sim_stub_lookup(const char *symbol))(void);

#endif
