/* The paging counters: kept with atomics, read as one snapshot through memvirt_counters() (the API
 * the daemon link reads too), and printed as one line at exit when MEMVIRT_LOG=info or debug. */
#include "config.h"

#include "interpose/internal.h"
#include "protocol/units.h"

struct mv_counters_atomic mv_count;

MV_EXPORT void memvirt_counters(struct memvirt_counters *out)
{
	if (out == NULL)
		return;
	mv_budget_read(&out->budget, &out->resident_bytes);
	out->host_bytes = atomic_load(&mv_count.host_bytes);
	out->page_outs = atomic_load(&mv_count.page_outs);
	out->page_ins = atomic_load(&mv_count.page_ins);
	out->fault_ins = atomic_load(&mv_count.fault_ins);
	out->bytes_out = atomic_load(&mv_count.bytes_out);
	out->bytes_in = atomic_load(&mv_count.bytes_in);
	out->stall_ns = atomic_load(&mv_count.stall_ns);
	out->app_vmm_bytes = atomic_load(&mv_count.app_vmm_bytes);
	out->oom = atomic_load(&mv_count.oom);
	out->events_sent = atomic_load(&mv_count.events_sent);
	out->events_dropped = atomic_load(&mv_count.events_dropped);
	out->planned_outs = atomic_load(&mv_count.planned_outs);
	out->planned_ins = atomic_load(&mv_count.planned_ins);
	out->late_ins = atomic_load(&mv_count.late_ins);
	out->divergences = atomic_load(&mv_count.divergences);
}

__attribute__((destructor)) static void summary(void)
{
	struct memvirt_counters c;
	char b[32], r[32], h[32], o[32], i[32];

	if (mv_cfg.log_level > MV_LOG_INFO || mv_budget_now() == 0)
		return;
	memvirt_counters(&c);
	mv_log(MV_LOG_INFO,
	       "budget %s, resident %s, on host %s; page-outs %llu (%s), page-ins %llu (%s), fault-ins %llu, "
	       "stall %.3f ms, out-of-memory %llu; planned out %llu, in %llu, late %llu, "
	       "divergences %llu; events sent %llu, dropped %llu",
	       mv_format_size(c.budget, b, sizeof(b)), mv_format_size(c.resident_bytes, r, sizeof(r)),
	       mv_format_size(c.host_bytes, h, sizeof(h)), (unsigned long long)c.page_outs,
	       mv_format_size(c.bytes_out, o, sizeof(o)), (unsigned long long)c.page_ins,
	       mv_format_size(c.bytes_in, i, sizeof(i)), (unsigned long long)c.fault_ins, (double)c.stall_ns / 1e6,
	       (unsigned long long)c.oom, (unsigned long long)c.planned_outs, (unsigned long long)c.planned_ins,
	       (unsigned long long)c.late_ins, (unsigned long long)c.divergences, (unsigned long long)c.events_sent,
	       (unsigned long long)c.events_dropped);
}
