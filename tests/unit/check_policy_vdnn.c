/* vdnn-all and vdnn-conv (policies/vdnn-all.c, policies/vdnn-conv.c) on synthetic layered networks:
 * every large activation out once after its last forward use and in exactly `lookahead` layers
 * ahead of its backward use; nothing small, pinned or alive across steps paged; vdnn-conv limited
 * to the heaviest launches' buffers; lru's empty plan. */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/policytest.h"

/* The iteration buffer of activation i (site 0x100 + i, allocated within the step). */
static uint32_t act_buf(const struct mv_iter *it, uint32_t i)
{
	uint32_t b;

	for (b = 0; b < it->nbufs; b++)
		if (it->bufs[b].site == 0x100 + i && it->bufs[b].alloc_at != MV_TRACE_NONE)
			return b;
	ck_abort_msg("no activation %u in the iteration", i);
	return MV_TRACE_NONE;
}

/* The plan's only op of that kind for buf, or NULL when it has none; more than one fails. */
static const struct mv_plan_op *op_of(const struct mv_plan *pl, uint32_t kind, uint32_t buf)
{
	const struct mv_plan_op *found = NULL;
	uint32_t k;

	for (k = 0; k < pl->nops; k++)
		if (pl->ops[k].kind == kind && pl->ops[k].buf == buf) {
			ck_assert_msg(found == NULL, "buffer %u has two %s ops", buf, kind == MV_PLAN_OUT ? "OUT" : "IN");
			found = &pl->ops[k];
		}
	return found;
}

static struct mv_iter *layered(struct pt_gen *g, struct pt_net *net)
{
	net->mark = 1;
	pt_gen_init(g, net, 80 * PT_GIB);
	pt_gen_iterations(g, 3);
	pt_gen_partial(g, 0);
	return pt_iter(g, 10000);
}

static struct mv_plan *plan_with(const struct mv_policy *pol, const struct mv_iter *it, uint32_t lookahead,
				 double heavy)
{
	struct mv_policy_params p;
	struct mv_plan *pl = NULL;

	mv_policy_defaults(&p);
	p.budget = 1 * PT_GIB;
	p.lookahead = lookahead;
	p.heavy_fraction = heavy;
	ck_assert_int_eq(pol->plan(it, &p, NULL, &pl), 0);
	ck_assert_ptr_nonnull(pl);
	ck_assert_uint_eq(pl->nlaunch, it->nlaunch);
	ck_assert_uint_eq(pl->fingerprint, it->fingerprint);
	return pl;
}

/* Activation i (< L - 1) is last used forward by layer i + 1 and next by that layer's backward. */
static void expect_paged(const struct mv_plan *pl, const struct mv_iter *it, uint32_t L, uint32_t i, uint32_t ahead)
{
	uint32_t b = act_buf(it, i);
	const struct mv_plan_op *out = op_of(pl, MV_PLAN_OUT, b), *in = op_of(pl, MV_PLAN_IN, b);

	ck_assert_msg(out != NULL && in != NULL, "activation %u not paged", i);
	ck_assert_uint_eq(out->at, PT_FWD(i + 1));
	ck_assert_uint_eq(out->need, PT_BWD(L, i + 1));
	ck_assert_uint_eq(in->need, PT_BWD(L, i + 1));
	ck_assert_uint_eq(in->at, PT_BWD(L, i + 1) - ahead);
}

static void expect_resident(const struct mv_plan *pl, uint32_t b)
{
	ck_assert_ptr_null(op_of(pl, MV_PLAN_OUT, b));
	ck_assert_ptr_null(op_of(pl, MV_PLAN_IN, b));
}

START_TEST(test_all_one_layer_ahead)
{
	struct pt_net net = pt_net_layered(8, 64 * PT_MIB, 16 * PT_MIB);
	struct pt_gen g;
	struct mv_iter *it = layered(&g, &net);
	struct mv_plan *pl;
	uint32_t i, b;

	ck_assert_uint_eq(it->nlaunch, pt_step_launches(&net));
	pl = plan_with(&mv_policy_vdnn_all, it, 1, 0.5);
	for (i = 0; i + 1 < 8; i++)
		expect_paged(pl, it, 8, i, 1);
	/* The last activation goes straight from the loss into backward: no idle stretch. */
	expect_resident(pl, act_buf(it, 7));
	ck_assert_uint_eq(pl->nops, 2 * 7);
	/* Weights, gradients and the input live across steps: never paged. */
	for (b = 0; b < it->nbufs; b++)
		if (it->bufs[b].alloc_at == MV_TRACE_NONE)
			expect_resident(pl, b);
	mv_plan_free(pl);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

START_TEST(test_all_two_layers_ahead)
{
	struct pt_net net = pt_net_layered(8, 64 * PT_MIB, 16 * PT_MIB);
	struct pt_gen g;
	struct mv_iter *it = layered(&g, &net);
	struct mv_plan *pl = plan_with(&mv_policy_vdnn_all, it, 2, 0.5);
	uint32_t i;

	for (i = 0; i + 2 < 8; i++)
		expect_paged(pl, it, 8, i, 2);
	/* Activation 6 is idle only from layer 7's forward to its backward: two layers ahead of that
	 * is before its page-out, so it stays. */
	expect_resident(pl, act_buf(it, 6));
	expect_resident(pl, act_buf(it, 7));
	ck_assert_uint_eq(pl->nops, 2 * 6);
	mv_plan_free(pl);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

/* Without weights every launch still begins a layer (each brings a new activation). */
START_TEST(test_all_without_weights)
{
	struct pt_net net = pt_net_layered(6, 8 * PT_MIB, 0);
	struct pt_gen g;
	struct mv_iter *it = layered(&g, &net);
	struct mv_plan *pl = plan_with(&mv_policy_vdnn_all, it, 1, 0.5);
	uint32_t i;

	for (i = 0; i + 1 < 6; i++)
		expect_paged(pl, it, 6, i, 1);
	ck_assert_uint_eq(pl->nops, 2 * 5);
	mv_plan_free(pl);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

START_TEST(test_all_skips_small_and_pinned)
{
	static const uint64_t act[8] = { 64 * PT_MIB, 512 * PT_KIB, 64 * PT_MIB, 1 * PT_MIB - 1,
					 1 * PT_MIB, 64 * PT_MIB, 64 * PT_MIB, 64 * PT_MIB };
	struct pt_net net = pt_net_layered(8, 0, 16 * PT_MIB);
	struct pt_gen g;
	struct mv_iter *it;
	struct mv_plan *pl;
	uint32_t i;

	net.act = act;
	net.input_bytes = 64 * PT_MIB;
	net.pin_weights = 1;
	it = layered(&g, &net);
	pl = plan_with(&mv_policy_vdnn_all, it, 1, 0.5);
	for (i = 0; i + 1 < 8; i++) {
		if (act[i] < 1 * PT_MIB)
			expect_resident(pl, act_buf(it, i));
		else
			expect_paged(pl, it, 8, i, 1);
	}
	ck_assert_uint_eq(pl->nops, 2 * 5);
	mv_plan_free(pl);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

START_TEST(test_conv_heaviest_only)
{
	static const uint64_t fwd[8] = { 100000, 100000, 10000000, 100000, 100000, 10000000, 100000, 100000 };
	static const uint64_t bwd[8] = { 200000, 200000, 20000000, 200000, 200000, 20000000, 200000, 200000 };
	struct pt_net net = pt_net_layered(8, 64 * PT_MIB, 16 * PT_MIB);
	struct pt_gen g;
	struct mv_iter *it;
	struct mv_plan *pl;
	uint32_t i;

	net.fwd = fwd;
	net.bwd = bwd;
	it = layered(&g, &net);
	/* Backward of layers 2 and 5 make up 40 of the step's 62.65 ms: half the step. They name
	 * activations 1, 2 (layer 2) and 4, 5 (layer 5). */
	pl = plan_with(&mv_policy_vdnn_conv, it, 1, 0.5);
	for (i = 0; i + 1 < 8; i++) {
		if (i == 1 || i == 2 || i == 4 || i == 5)
			expect_paged(pl, it, 8, i, 1);
		else
			expect_resident(pl, act_buf(it, i));
	}
	ck_assert_uint_eq(pl->nops, 2 * 4);
	mv_plan_free(pl);
	/* A tenth of the step: backward of layer 5 alone (the earlier of two equals). */
	pl = plan_with(&mv_policy_vdnn_conv, it, 1, 0.1);
	ck_assert_uint_eq(pl->nops, 2 * 2);
	expect_paged(pl, it, 8, 4, 1);
	expect_paged(pl, it, 8, 5, 1);
	mv_plan_free(pl);
	/* The whole step: every launch counts, so it is vdnn-all. */
	pl = plan_with(&mv_policy_vdnn_conv, it, 1, 1.0);
	for (i = 0; i + 1 < 8; i++)
		expect_paged(pl, it, 8, i, 1);
	ck_assert_uint_eq(pl->nops, 2 * 7);
	mv_plan_free(pl);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

START_TEST(test_lru_empty_and_deterministic)
{
	struct pt_net net = pt_net_layered(8, 64 * PT_MIB, 16 * PT_MIB);
	struct pt_gen g;
	struct mv_iter *it = layered(&g, &net);
	struct mv_plan *a, *b;

	a = plan_with(&mv_policy_lru, it, 1, 0.5);
	ck_assert_uint_eq(a->nops, 0);
	mv_plan_free(a);
	a = plan_with(&mv_policy_vdnn_all, it, 1, 0.5);
	b = plan_with(&mv_policy_vdnn_all, it, 1, 0.5);
	ck_assert_uint_eq(a->nops, b->nops);
	ck_assert(memcmp(a->ops, b->ops, a->nops * sizeof(*a->ops)) == 0);
	mv_plan_free(a);
	mv_plan_free(b);
	mv_iter_free(it);
	pt_gen_free(&g);
}
END_TEST

static Suite *vdnn_suite(void)
{
	Suite *s = suite_create("policy_vdnn");
	TCase *tc = tcase_create("vdnn");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_all_one_layer_ahead);
	tcase_add_test(tc, test_all_two_layers_ahead);
	tcase_add_test(tc, test_all_without_weights);
	tcase_add_test(tc, test_all_skips_small_and_pinned);
	tcase_add_test(tc, test_conv_heaviest_only);
	tcase_add_test(tc, test_lru_empty_and_deterministic);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vdnn_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
