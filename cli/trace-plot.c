/* memvirt trace plot: an SVG chart of the device memory one iteration holds, with unlimited memory
 * and under a policy and its budget. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/internal.h"
#include "policies/policy.h"
#include "protocol/units.h"

/* Writes s as XML character data. */
static void plot_xml_str(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				fputc(*s, f);
		}
	}
}

/* The chart's frame, in SVG user units. */
#define PLOT_W 960
#define PLOT_H 540
#define PLOT_LEFT 90
#define PLOT_RIGHT 30
#define PLOT_TOP 60
#define PLOT_BOTTOM 70

/* A tick step of 1, 2 or 5 times a power of ten, giving about `want` ticks over span. */
static double plot_step(double span, int want)
{
	double raw = span / want, mag, f;

	if (!(raw > 0))
		return 1;
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* The unit memory is labelled in: GiB, MiB or KiB, whichever keeps the largest value above 1. */
static void plot_unit(uint64_t max, double *div, const char **name)
{
	if (max >= ((uint64_t)1 << 30)) {
		*div = 1073741824.0;
		*name = "GiB";
	} else if (max >= ((uint64_t)1 << 20)) {
		*div = 1048576.0;
		*name = "MiB";
	} else {
		*div = 1024.0;
		*name = "KiB";
	}
}

/* A step curve as an SVG polyline. */
static void plot_curve(FILE *f, const struct cli_sched_point *p, size_t n, double xs, double ys,
		       const char *id, const char *color)
{
	fprintf(f, "<polyline id=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", id,
		color);
	for (size_t i = 0; i < n; i++) {
		double x = PLOT_LEFT + (double)p[i].t * xs, y = PLOT_H - PLOT_BOTTOM - (double)p[i].bytes * ys;

		/* A step: hold the previous value until this instant. */
		if (i > 0)
			fprintf(f, " %.2f,%.2f", x, PLOT_H - PLOT_BOTTOM - (double)p[i - 1].bytes * ys);
		fprintf(f, " %.2f,%.2f", x, y);
	}
	fprintf(f, "\"/>\n");
}

/* What one chart shows: an iteration with unlimited memory and under the policy and budget. */
struct plot_data {
	const struct cli_trace_ctx *c;
	const struct mv_policy *pol;
	struct cli_trace_run run;          /* the policy's plan and totals */
	struct cli_sched su, sp;           /* the schedules: unlimited, and the policy's */
	struct cli_sched_point *pu, *pp;   /* their memory curves */
	size_t nu, np;
};

/* How the data maps onto the frame: user units per ns (xs) and per byte (ys); the ticks, in ms
 * and in unit (div bytes). */
struct plot_scale {
	double xs, ys;
	double xstep, ystep;
	double div;
	const char *unit;
};

static void plot_scales(const struct plot_data *d, struct plot_scale *sc)
{
	uint64_t tmax, ymax = 0;

	tmax = d->pu[d->nu - 1].t > d->pp[d->np - 1].t ? d->pu[d->nu - 1].t : d->pp[d->np - 1].t;
	if (tmax == 0)
		tmax = 1;
	for (size_t i = 0; i < d->nu; i++)
		ymax = d->pu[i].bytes > ymax ? d->pu[i].bytes : ymax;
	for (size_t i = 0; i < d->np; i++)
		ymax = d->pp[i].bytes > ymax ? d->pp[i].bytes : ymax;
	ymax = d->c->budget > ymax ? d->c->budget : ymax;
	plot_unit(ymax, &sc->div, &sc->unit);
	/* Headroom above the highest line, then whole ticks. */
	sc->ystep = plot_step((double)ymax * 1.1 / sc->div, 6);
	sc->ys = (double)(PLOT_H - PLOT_TOP - PLOT_BOTTOM) /
		 (ceil((double)ymax * 1.1 / sc->div / sc->ystep) * sc->ystep * sc->div);
	sc->xstep = plot_step((double)tmax / 1e6, 8);
	sc->xs = (double)(PLOT_W - PLOT_LEFT - PLOT_RIGHT) /
		 (ceil((double)tmax / 1e6 / sc->xstep) * sc->xstep * 1e6);
}

/* The document's start, the title and the line of numbers under it. */
static void plot_head(FILE *f, const struct plot_data *d)
{
	const struct cli_trace_opts *o = d->c->o;
	char a[32], b[32];

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		   "font-family=\"sans-serif\" font-size=\"12\">\n", PLOT_W, PLOT_H, PLOT_W, PLOT_H);
	fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", PLOT_W, PLOT_H);
	fprintf(f, "<text id=\"title\" x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">"
		   "Device memory over one iteration: ", PLOT_W / 2);
	plot_xml_str(f, o->file);
	fprintf(f, ", policy %s, budget %s</text>\n", d->pol->name,
		mv_format_size(d->c->budget, a, sizeof(a)));
	fprintf(f, "<text x=\"%d\" y=\"46\" text-anchor=\"middle\" fill=\"#555\">step %.3f ms "
		   "(unlimited %.3f ms), peak %s (unlimited %s), link %g/%g GB/s</text>\n", PLOT_W / 2,
		(double)d->run.r.step_ns / 1e6, (double)d->su.step_ns / 1e6,
		mv_format_size(d->run.r.peak, a, sizeof(a)), mv_format_size(d->su.peak, b, sizeof(b)),
		o->h2d_gbps, o->d2h_gbps);
}

/* Axes, ticks and grid, and the axes' labels. */
static void plot_axes(FILE *f, const struct plot_scale *sc)
{
	double step;

	fprintf(f, "<g id=\"axes\" stroke=\"black\">\n<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n"
		   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n</g>\n",
		PLOT_LEFT, PLOT_H - PLOT_BOTTOM, PLOT_W - PLOT_RIGHT, PLOT_H - PLOT_BOTTOM, PLOT_LEFT, PLOT_TOP,
		PLOT_LEFT, PLOT_H - PLOT_BOTTOM);
	fprintf(f, "<g id=\"xticks\">\n");
	for (step = 0; PLOT_LEFT + step * 1e6 * sc->xs <= PLOT_W - PLOT_RIGHT + 0.5; step += sc->xstep) {
		double x = PLOT_LEFT + step * 1e6 * sc->xs;

		fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#ddd\"/>"
			   "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"black\"/>"
			   "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
			x, PLOT_TOP, x, PLOT_H - PLOT_BOTTOM, x, PLOT_H - PLOT_BOTTOM, x, PLOT_H - PLOT_BOTTOM + 5,
			x, PLOT_H - PLOT_BOTTOM + 20, step);
	}
	fprintf(f, "</g>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time (ms)</text>\n",
		(PLOT_LEFT + PLOT_W - PLOT_RIGHT) / 2, PLOT_H - PLOT_BOTTOM + 42);
	fprintf(f, "<g id=\"yticks\">\n");
	for (step = 0; PLOT_H - PLOT_BOTTOM - step * sc->div * sc->ys >= PLOT_TOP - 0.5; step += sc->ystep) {
		double y = PLOT_H - PLOT_BOTTOM - step * sc->div * sc->ys;

		fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#ddd\"/>"
			   "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"black\"/>"
			   "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%g</text>\n",
			PLOT_LEFT, y, PLOT_W - PLOT_RIGHT, y, PLOT_LEFT - 5, y, PLOT_LEFT, y, PLOT_LEFT - 8, y + 4,
			step);
	}
	fprintf(f, "</g>\n<text x=\"24\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 24 %d)\">"
		   "resident device memory (%s)</text>\n", (PLOT_TOP + PLOT_H - PLOT_BOTTOM) / 2,
		(PLOT_TOP + PLOT_H - PLOT_BOTTOM) / 2, sc->unit);
}

/* The budget, the two curves, then the legend, top right. */
static void plot_lines(FILE *f, const struct plot_data *d, const struct plot_scale *sc)
{
	double budget_y = PLOT_H - PLOT_BOTTOM - (double)d->c->budget * sc->ys;
	char a[32];

	fprintf(f, "<line id=\"budget\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#c00\" "
		   "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n", PLOT_LEFT, budget_y,
		PLOT_W - PLOT_RIGHT, budget_y);
	plot_curve(f, d->pu, d->nu, sc->xs, sc->ys, "unlimited", "#888");
	plot_curve(f, d->pp, d->np, sc->xs, sc->ys, "policy", "#1f5fbf");

	fprintf(f, "<g id=\"legend\" transform=\"translate(%d %d)\">\n"
		   "<rect x=\"-8\" y=\"-14\" width=\"250\" height=\"62\" fill=\"white\" stroke=\"#aaa\"/>\n"
		   "<line x1=\"0\" y1=\"0\" x2=\"24\" y2=\"0\" stroke=\"#888\" stroke-width=\"1.5\"/>"
		   "<text x=\"30\" y=\"4\">unlimited memory (peak %s)</text>\n",
		PLOT_W - PLOT_RIGHT - 250, PLOT_TOP + 10, mv_format_size(d->su.peak, a, sizeof(a)));
	fprintf(f, "<line x1=\"0\" y1=\"18\" x2=\"24\" y2=\"18\" stroke=\"#1f5fbf\" stroke-width=\"1.5\"/>"
		   "<text x=\"30\" y=\"22\">%s (peak %s)</text>\n", d->pol->name,
		mv_format_size(d->run.r.peak, a, sizeof(a)));
	fprintf(f, "<line x1=\"0\" y1=\"36\" x2=\"24\" y2=\"36\" stroke=\"#c00\" stroke-width=\"1.5\" "
		   "stroke-dasharray=\"6 4\"/><text x=\"30\" y=\"40\">budget %s</text>\n</g>\n</svg>\n",
		mv_format_size(d->c->budget, a, sizeof(a)));
}

int cli_trace_plot(const struct cli_trace_opts *o)
{
	struct cli_trace_ctx c;
	struct plot_data d = {.c = &c};
	struct plot_scale sc;
	FILE *f = stdout;
	int rc;

	if (o->budget == NULL) {
		fprintf(stderr, "memvirt trace plot: --budget is required (a size such as 12GiB or a "
				"percentage of the iteration's peak such as 50%%)\n");
		return 2;
	}
	d.pol = mv_policy_find(o->plan.policy != NULL ? o->plan.policy : "auto");
	if (cli_trace_load(&c, o, 1) < 0)
		return 1;
	if (cli_sched_run(c.it, NULL, UINT64_MAX, &c.m, &d.su) < 0) {
		cli_trace_ctx_free(&c);
		return 1;
	}
	if (cli_trace_modeled(&c, d.pol, c.budget, &d.run, &d.sp) < 0) {
		cli_sched_free(&d.su);
		cli_trace_ctx_free(&c);
		return 1;
	}
	d.nu = cli_sched_curve(&d.su, &d.pu);
	d.np = cli_sched_curve(&d.sp, &d.pp);
	plot_scales(&d, &sc);
	plot_head(f, &d);
	plot_axes(f, &sc);
	plot_lines(f, &d, &sc);
	rc = fflush(f) == 0 && !ferror(f) ? 0 : 1;
	if (rc != 0)
		fprintf(stderr, "memvirt trace plot: writing: %s\n", strerror(errno));
	free(d.pu);
	free(d.pp);
	cli_sched_free(&d.su);
	cli_sched_free(&d.sp);
	mv_plan_free(d.run.plan);
	cli_trace_ctx_free(&c);
	return rc;
}
