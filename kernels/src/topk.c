/*
 * exact_topk: one read of a relation (or of the rows a WHERE clause keeps), the exact top-k of many queries.
 *
 *   SELECT pgembed_kernels.exact_topk(id, embedding, $queries, $k, 'cosine') FROM docs WHERE ...
 *
 * returns, for every query, what `ORDER BY embedding <=> q, id LIMIT k` returns: the same rows, the same
 * distances (pgvector's own, from the very function `<=>` runs), in the same order (ties by key, in the
 * key's collation). Its twin is that statement, once per query (pgembed.scan_topk runs one or the other).
 *
 * How it is fast and still exact: rows are buffered in blocks and every (query, row) pair is scored with a
 * float32 dot product (a register-blocked kernel, vectorised), from which the distance follows up to a
 * rounding error with a proven bound (both this sum and pgvector's are within gamma_d * |q| |x| of the true
 * inner product, gamma_d = d u / (1 - d u), u = 2^-24, in any order of summation). A pair is dismissed only
 * when its estimate minus that bound is above the query's current k-th exact distance, so it cannot belong
 * to the top k; every other pair gets pgvector's exact distance and competes in the query's heap on
 * (distance, key). Non-finite estimates are never dismissed.
 *
 * Rows whose vector is NULL are skipped, as the twin's WHERE ... IS NOT NULL does; a NULL key is an error
 * (pgembed calls this with a collection's primary key). queries, k and metric are read from the first row.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#define BLOCK_ROWS 64

typedef struct TopkState
{
	int			nq;
	int			dim;
	int			k;
	int			metric;
	PgvectorFunction exact;
	double		gamma;			/* the rounding bound's factor */
	Size		vector_size;	/* KVECTOR_SIZE(dim) */
	Size		stride;			/* vector_size rounded up to a cache line */
	char	   *queries;		/* nq KVector copies, back to back */
	double	   *query_norms;
	KeyHeaps	top;
	char	   *rows;			/* BLOCK_ROWS KVector copies */
	double	   *row_norms;
	Datum	   *row_keys;
	int			buffered;
	float	   *dots;			/* nq x BLOCK_ROWS */
	const float **query_floats;
	const float **subset_floats;	/* a cluster's queries (probe_topk) */
	const float **row_floats;
	MemoryContext state_context;
	MemoryContext block_context;
	long		scored;
	long		checked;
} TopkState;

/* Copies laid out so that each one's floats start on a cache line: the scoring kernel's loads never split. */
#define QUERY(s, i) ((const KVector *) ((s)->queries + (Size) (i) * (s)->stride))
#define ROW(s, i) ((KVector *) ((s)->rows + (Size) (i) * (s)->stride))
#define CACHE_LINE 64

static char *
aligned_copies(Size stride, int n, char **allocated)
{
	char	   *block = palloc(stride * n + 2 * CACHE_LINE);
	uintptr_t	line = ((uintptr_t) block + CACHE_LINE - 1) & ~(uintptr_t) (CACHE_LINE - 1);

	if (allocated != NULL)
		*allocated = block;		/* what pfree takes */
	return (char *) (line + CACHE_LINE - offsetof(KVector, x));
}

/*
 * When a pair can be dismissed. With u = 2^-24 and gamma = d u / (1 - d u): both this scan's float32 dot
 * product and pgvector's are within gamma |q| |x| of the exact inner product, whatever their order of
 * summation or fusing; pgvector's norms within gamma |q|^2 and gamma |x|^2. So a distance estimated from the
 * dot product is within 4 gamma (cosine), 4 gamma |q| |x| (ip) or 4 gamma (|q| + |x|)^2 (l2, squared) of
 * pgvector's, and a pair whose estimate is beyond the query's k-th distance by more than that cannot enter.
 * The tests below use 6 gamma: one more covers the float64 rounding of the tests themselves, and one more the
 * float32 products that underflow, each off by at most 2^-149 (about 4d of them in all, 9e-41 in 16,000
 * dimensions), which norm_of keeps below 1e-10 of |q| |x| by taking only vectors of norm at least 1e-15.
 * Written as "dot < limit", so that a NaN dot is never dismissed; non-finite dots never are either.
 */
typedef struct Bound
{
	double		a;				/* cosine: (1 - t - 6 gamma) |q|; ip: -t; l2: |q|^2 - t^2 */
	double		b;				/* ip: 6 gamma |q|; l2: 6 gamma */
	bool		none;			/* nothing can be dismissed (fewer than k held, or a NaN k-th distance) */
} Bound;

static Bound
bound_for(const TopkState *s, int q)
{
	double		t = key_heaps_threshold(&s->top, q);
	double		qn = s->query_norms[q];
	Bound		limit = {0, 0, !isfinite(t) || !(qn > 0) || !isfinite(qn)};

	switch (s->metric)
	{
		case METRIC_COSINE:
			limit.a = (1 - t - 6 * s->gamma) * qn;
			break;
		case METRIC_IP:
			limit.a = -t;
			limit.b = 6 * s->gamma * qn;
			break;
		default:
			limit.a = qn * qn - t * t;
			limit.b = 6 * s->gamma;
			break;
	}
	return limit;
}

static inline bool
dismissed(const TopkState *s, const Bound *limit, float dot, double qn, double rn)
{
	if (limit->none || !isfinite(dot) || !(rn > 0) || !isfinite(rn))
		return false;
	switch (s->metric)
	{
		case METRIC_COSINE:		/* 1 - dot / (|q| |x|) - 6 gamma > t */
			return dot < limit->a * rn;
		case METRIC_IP:			/* -dot - 6 gamma |q| |x| > t */
			return dot < limit->a - limit->b * rn;
		default:				/* |q|^2 + |x|^2 - 2 dot - 6 gamma (|q| + |x|)^2 > t^2 */
			return 2.0 * dot < limit->a + rn * rn - limit->b * (qn + rn) * (qn + rn);
	}
}

/*
 * dots[q * BLOCK_ROWS + r] = <query q, row r>, four queries by two rows at a time: eight accumulators of
 * eight lanes and the six operands fit AVX's sixteen vector registers. An FMA build where the CPU has it
 * (x86-64), portable C elsewhere.
 */
static void
score_block_c(const float *const *q, int nq, const float *const *r, int nr, int dim, float *dots)
{
	for (int a = 0; a < nq; a++)
		for (int b = 0; b < nr; b++)
		{
			float		acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
			float		sum = 0;
			int			i = 0;

			for (; i + 8 <= dim; i += 8)
				for (int l = 0; l < 8; l++)
					acc[l] += q[a][i + l] * r[b][i + l];
			for (; i < dim; i++)
				sum += q[a][i] * r[b][i];
			for (int l = 0; l < 8; l++)
				sum += acc[l];
			dots[(Size) a * BLOCK_ROWS + b] = sum;
		}
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(PGEMBED_SANITIZE)
#include <immintrin.h>
#define HAVE_FMA_KERNEL 1

__attribute__((target("fma")))
static void
score_block_fma(const float *const *q, int nq, const float *const *r, int nr, int dim, float *dots)
{
	for (int q0 = 0; q0 < nq; q0 += 4)
	{
		const float *a0 = q[q0];
		const float *a1 = q[Min(q0 + 1, nq - 1)];
		const float *a2 = q[Min(q0 + 2, nq - 1)];
		const float *a3 = q[Min(q0 + 3, nq - 1)];

		for (int r0 = 0; r0 < nr; r0 += 2)
		{
			const float *x0 = r[r0];
			const float *x1 = r[Min(r0 + 1, nr - 1)];
			__m256		c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;
			__m256		c20 = c00, c21 = c00, c30 = c00, c31 = c00;
			__m256		h0, h1, h2, h3, g0, g1;
			float		out[8];
			int			i = 0;

			for (; i + 8 <= dim; i += 8)
			{
				__m256		v0 = _mm256_loadu_ps(x0 + i);
				__m256		v1 = _mm256_loadu_ps(x1 + i);
				__m256		y;

				y = _mm256_loadu_ps(a0 + i);
				c00 = _mm256_fmadd_ps(y, v0, c00);
				c01 = _mm256_fmadd_ps(y, v1, c01);
				y = _mm256_loadu_ps(a1 + i);
				c10 = _mm256_fmadd_ps(y, v0, c10);
				c11 = _mm256_fmadd_ps(y, v1, c11);
				y = _mm256_loadu_ps(a2 + i);
				c20 = _mm256_fmadd_ps(y, v0, c20);
				c21 = _mm256_fmadd_ps(y, v1, c21);
				y = _mm256_loadu_ps(a3 + i);
				c30 = _mm256_fmadd_ps(y, v0, c30);
				c31 = _mm256_fmadd_ps(y, v1, c31);
			}
			/* the eight horizontal sums at once: q0r0 q1r0 q2r0 q3r0 q0r1 q1r1 q2r1 q3r1 */
			h0 = _mm256_hadd_ps(c00, c10);
			h1 = _mm256_hadd_ps(c20, c30);
			h2 = _mm256_hadd_ps(c01, c11);
			h3 = _mm256_hadd_ps(c21, c31);
			g0 = _mm256_hadd_ps(h0, h1);
			g1 = _mm256_hadd_ps(h2, h3);
			_mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(g0, g1, 0x20),
												_mm256_permute2f128_ps(g0, g1, 0x31)));
			for (; i < dim; i++)
			{
				out[0] += a0[i] * x0[i];
				out[1] += a1[i] * x0[i];
				out[2] += a2[i] * x0[i];
				out[3] += a3[i] * x0[i];
				out[4] += a0[i] * x1[i];
				out[5] += a1[i] * x1[i];
				out[6] += a2[i] * x1[i];
				out[7] += a3[i] * x1[i];
			}
			for (int a = 0; a < 4 && q0 + a < nq; a++)
				for (int b = 0; b < 2 && r0 + b < nr; b++)
					dots[(Size) (q0 + a) * BLOCK_ROWS + r0 + b] = out[b * 4 + a];
		}
	}
}

/*
 * The same products with AVX-512: four queries by four rows, sixteen accumulators of sixteen lanes and eight
 * operands in AVX-512's thirty-two registers; the last dim % 16 coordinates by masked loads.
 */
__attribute__((target("avx512f")))
static void
score_block_avx512(const float *const *q, int nq, const float *const *r, int nr, int dim, float *dots)
{
	const int	whole = dim - dim % 16;
	const __mmask16 tail = (__mmask16) ((1u << (dim % 16)) - 1);

	for (int q0 = 0; q0 < nq; q0 += 4)
	{
		const float *a0 = q[q0];
		const float *a1 = q[Min(q0 + 1, nq - 1)];
		const float *a2 = q[Min(q0 + 2, nq - 1)];
		const float *a3 = q[Min(q0 + 3, nq - 1)];

		for (int r0 = 0; r0 < nr; r0 += 4)
		{
			const float *x0 = r[r0];
			const float *x1 = r[Min(r0 + 1, nr - 1)];
			const float *x2 = r[Min(r0 + 2, nr - 1)];
			const float *x3 = r[Min(r0 + 3, nr - 1)];
			__m512		c[4][4];
			float		out[4][4];

			for (int i = 0; i < 4; i++)
				for (int j = 0; j < 4; j++)
					c[i][j] = _mm512_setzero_ps();
			for (int i = 0; i <= dim - 16 || (i == whole && tail); i += 16)
			{
				const __mmask16 m = i < whole ? (__mmask16) 0xFFFF : tail;
				__m512		v0 = _mm512_maskz_loadu_ps(m, x0 + i);
				__m512		v1 = _mm512_maskz_loadu_ps(m, x1 + i);
				__m512		v2 = _mm512_maskz_loadu_ps(m, x2 + i);
				__m512		v3 = _mm512_maskz_loadu_ps(m, x3 + i);
				__m512		y;

				y = _mm512_maskz_loadu_ps(m, a0 + i);
				c[0][0] = _mm512_fmadd_ps(y, v0, c[0][0]);
				c[0][1] = _mm512_fmadd_ps(y, v1, c[0][1]);
				c[0][2] = _mm512_fmadd_ps(y, v2, c[0][2]);
				c[0][3] = _mm512_fmadd_ps(y, v3, c[0][3]);
				y = _mm512_maskz_loadu_ps(m, a1 + i);
				c[1][0] = _mm512_fmadd_ps(y, v0, c[1][0]);
				c[1][1] = _mm512_fmadd_ps(y, v1, c[1][1]);
				c[1][2] = _mm512_fmadd_ps(y, v2, c[1][2]);
				c[1][3] = _mm512_fmadd_ps(y, v3, c[1][3]);
				y = _mm512_maskz_loadu_ps(m, a2 + i);
				c[2][0] = _mm512_fmadd_ps(y, v0, c[2][0]);
				c[2][1] = _mm512_fmadd_ps(y, v1, c[2][1]);
				c[2][2] = _mm512_fmadd_ps(y, v2, c[2][2]);
				c[2][3] = _mm512_fmadd_ps(y, v3, c[2][3]);
				y = _mm512_maskz_loadu_ps(m, a3 + i);
				c[3][0] = _mm512_fmadd_ps(y, v0, c[3][0]);
				c[3][1] = _mm512_fmadd_ps(y, v1, c[3][1]);
				c[3][2] = _mm512_fmadd_ps(y, v2, c[3][2]);
				c[3][3] = _mm512_fmadd_ps(y, v3, c[3][3]);
			}
			for (int i = 0; i < 4; i++)
				for (int j = 0; j < 4; j++)
					out[i][j] = _mm512_reduce_add_ps(c[i][j]);
			for (int i = 0; i < 4 && q0 + i < nq; i++)
				for (int j = 0; j < 4 && r0 + j < nr; j++)
					dots[(Size) (q0 + i) * BLOCK_ROWS + r0 + j] = out[i][j];
		}
	}
}
#endif

static void
score_block(const float *const *q, int nq, const float *const *r, int nr, int dim, float *dots)
{
#ifdef HAVE_FMA_KERNEL
	if (__builtin_cpu_supports("avx512f"))
	{
		score_block_avx512(q, nq, r, nr, dim, dots);
		return;
	}
	if (__builtin_cpu_supports("fma"))
	{
		score_block_fma(q, nq, r, nr, dim, dots);
		return;
	}
#endif
	score_block_c(q, nq, r, nr, dim, dots);
}

/*
 * |v| in float64, or NaN, so that no pair with v is ever dismissed, where the bound is not proved: a component
 * above 1e16 (float32 products and sums could overflow in up to 16,000 dimensions), or a norm below 1e-15 (the
 * products that underflow would no longer be negligible against |q| |x|). Tiny components in a vector of
 * ordinary norm are fine: real embeddings have them (1e-34 in sentence-transformer output). Such rows and
 * queries are checked exactly, one by one.
 */
static double
norm_of(const KVector *v)
{
	double		s = 0;

	for (int i = 0; i < v->dim; i++)
	{
		double		x = fabs((double) v->x[i]);

		if (!(x <= 1e16))
			return NAN;
		s += x * x;
	}
	s = sqrt(s);
	return s >= 1e-15 ? s : NAN;
}

/*
 * Score nr row copies (at rows, a stride apart, with their norms and keys) against the queries subset[0..nsub),
 * or against every query when subset is NULL, and offer each pair that may enter its query's heap.
 */
static void
score_rows(TopkState *s, char *rows, const double *norms, const Datum *keys, int nr, const int *subset, int nsub)
{
	for (int r = 0; r < nr; r++)
		s->row_floats[r] = ((const KVector *) (rows + (Size) r * s->stride))->x;
	if (subset != NULL)
		for (int a = 0; a < nsub; a++)
			s->subset_floats[a] = QUERY(s, subset[a])->x;
	score_block(subset != NULL ? s->subset_floats : s->query_floats, nsub, s->row_floats, nr, s->dim, s->dots);
	for (int a = 0; a < nsub; a++)
	{
		const int	q = subset != NULL ? subset[a] : a;
		const float *dots = s->dots + (Size) a * BLOCK_ROWS;
		double		qn = s->query_norms[q];
		Bound		limit = bound_for(s, q);

		for (int r = 0; r < nr; r++)
		{
			if (dismissed(s, &limit, dots[r], qn, norms[r]))
				continue;
			s->checked++;
			key_heaps_offer(&s->top, q, pgvector_call(s->exact, QUERY(s, q),
													  (const KVector *) (rows + (Size) r * s->stride)), keys[r]);
			limit = bound_for(s, q);
		}
	}
	s->scored += (long) nsub * nr;
}

static void
flush_block(TopkState *s)
{
	if (s->buffered == 0)
		return;
	score_rows(s, s->rows, s->row_norms, s->row_keys, s->buffered, NULL, s->nq);
	s->buffered = 0;
	MemoryContextReset(s->block_context);
}

/* The state of an aggregate whose queries are argument queries_arg, and k and metric arguments k_arg, k_arg + 1. */
static TopkState *
new_state(FunctionCallInfo fcinfo, MemoryContext context, int queries_arg, int k_arg)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	TopkState  *s = palloc0(sizeof(TopkState));
	VectorList	queries;

	if (PG_ARGISNULL(queries_arg) || PG_ARGISNULL(k_arg) || PG_ARGISNULL(k_arg + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("queries, k and metric must not be NULL")));
	queries = arg_vector_array(fcinfo, queries_arg, "queries");
	s->k = PG_GETARG_INT32(k_arg);
	s->metric = arg_metric(fcinfo, k_arg + 1);
	key_heaps_init(&s->top, fcinfo, 1, queries.n, s->k, context);
	s->nq = queries.n;
	s->dim = queries.items[0]->dim;
	s->vector_size = KVECTOR_SIZE(s->dim);
	s->stride = TYPEALIGN(CACHE_LINE, s->vector_size);
	s->queries = aligned_copies(s->stride, s->nq, NULL);
	s->query_norms = palloc(sizeof(double) * s->nq);
	for (int i = 0; i < s->nq; i++)
	{
		check_same_dims(s->dim, queries.items[i]->dim);
		memcpy((char *) QUERY(s, i), queries.items[i], s->vector_size);
		s->query_norms[i] = norm_of(queries.items[i]);
	}
	s->exact = s->metric == METRIC_COSINE ? PGV_COSINE_DISTANCE :
		(s->metric == METRIC_IP ? PGV_NEGATIVE_INNER_PRODUCT : PGV_L2_DISTANCE);
	pgvector_function(s->exact);
	s->gamma = (s->dim + 2) * ldexp(1.0, -24) / (1 - (s->dim + 2) * ldexp(1.0, -24));
	s->rows = aligned_copies(s->stride, BLOCK_ROWS, NULL);
	s->row_norms = palloc(sizeof(double) * BLOCK_ROWS);
	s->row_keys = palloc(sizeof(Datum) * BLOCK_ROWS);
	s->dots = palloc(sizeof(float) * (Size) s->nq * BLOCK_ROWS);
	s->query_floats = palloc(sizeof(float *) * s->nq);
	s->subset_floats = palloc(sizeof(float *) * s->nq);
	for (int i = 0; i < s->nq; i++)
		s->query_floats[i] = QUERY(s, i)->x;
	s->row_floats = palloc(sizeof(float *) * BLOCK_ROWS);
	s->state_context = context;
	s->block_context = AllocSetContextCreate(context, "exact_topk block", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(old);
	return s;
}

PG_FUNCTION_INFO_V1(kernel_exact_topk_step);
Datum
kernel_exact_topk_step(PG_FUNCTION_ARGS)
{
	MemoryContext context;
	TopkState  *s;
	const KVector *v;
	MemoryContext old;

	if (!AggCheckCallContext(fcinfo, &context))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("exact_topk is an aggregate")));
	s = PG_ARGISNULL(0) ? new_state(fcinfo, context, 3, 4) : (TopkState *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(2))
		PG_RETURN_POINTER(s);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a row's key is NULL: keys must not be NULL")));
	v = arg_vector(fcinfo, 2, "the row's vector");
	check_same_dims(s->dim, v->dim);
	memcpy(ROW(s, s->buffered), v, s->vector_size);
	s->row_norms[s->buffered] = norm_of(v);
	old = MemoryContextSwitchTo(s->block_context);
	s->row_keys[s->buffered] = datumCopy(PG_GETARG_DATUM(1), s->top.key_byval, s->top.key_len);
	MemoryContextSwitchTo(old);
	if (++s->buffered == BLOCK_ROWS)
		flush_block(s);
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(kernel_exact_topk_final);
Datum
kernel_exact_topk_final(PG_FUNCTION_ARGS)
{
	TopkState  *s;

	if (!AggCheckCallContext(fcinfo, NULL))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("exact_topk is an aggregate")));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (TopkState *) PG_GETARG_POINTER(0);
	flush_block(s);
	elog(DEBUG1, "exact_topk: %ld pairs scored, %ld checked exactly", s->scored, s->checked);
	PG_RETURN_DATUM(key_heaps_result(&s->top, fcinfo, "exact_topk"));
}

/*
 * probe_topk: exact_topk where each query reads only the rows of the clusters it probes.
 *
 *   SELECT pgembed_kernels.probe_topk(id, embedding_ivf, embedding, $queries, $probes, $k, 'cosine') FROM docs
 *   WHERE embedding_ivf = ANY ($every_probed_cluster)
 *
 * $probes holds each query's clusters, the same number for every query, query by query (a 2-D array reads the
 * same). For each query it returns what `ORDER BY embedding <=> q, id LIMIT k` over the rows of its clusters
 * returns (pgembed.probe_topk runs one or the other), by exact_topk's scoring and bound. A row is scored only
 * against the queries that probe its cluster: rows wait in a block of their cluster, PROBE_BLOCK_ROWS at most, and
 * a full block is scored against that cluster's queries at once. Every query keeps one heap over all its
 * clusters, so its threshold tightens from the first cluster on. Rows without a cluster, or of a cluster no
 * query probes, are skipped; a cluster listed twice for a query is read once for it.
 * Memory: the blocks of the clusters met, PROBE_BLOCK_ROWS rows each, at most PROBE_BLOCK_MEMORY bytes of them:
 * past that every waiting block is scored and its memory given back, besides exact_topk's.
 */
#define PROBE_BLOCK_ROWS 32
#define PROBE_BLOCK_MEMORY (64L * 1024 * 1024)	/* rows waiting in blocks, at most: then all are scored */

typedef struct ClusterBlock
{
	int32		cluster;
	int			first;			/* its queries: probe_queries[first .. first + nq) */
	int			nq;
	char	   *rows;			/* NULL until a row of the cluster comes */
	char	   *rows_block;		/* the allocation rows lie in */
	double	   *norms;
	Datum	   *keys;
	int			buffered;
} ClusterBlock;

typedef struct ProbeState
{
	TopkState  *topk;
	ClusterBlock *blocks;		/* by cluster, ascending */
	int			nblocks;
	int		   *probe_queries;
	Size		block_bytes;	/* of the blocks allocated now */
} ProbeState;

typedef struct ProbePair
{
	int32		cluster;
	int			query;
} ProbePair;

static int
pair_cmp(const void *a, const void *b)
{
	const ProbePair *x = a;
	const ProbePair *y = b;

	if (x->cluster != y->cluster)
		return x->cluster < y->cluster ? -1 : 1;
	return (x->query > y->query) - (x->query < y->query);
}

static ProbeState *
new_probe_state(FunctionCallInfo fcinfo, MemoryContext context)
{
	TopkState  *topk = new_state(fcinfo, context, 4, 6);
	MemoryContext old = MemoryContextSwitchTo(context);
	ProbeState *p = palloc0(sizeof(ProbeState));
	int			n;
	const int32 *probes;
	ProbePair  *pairs;
	int			npairs = 0;
	int			per_query;

	if (PG_ARGISNULL(5))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("probes must not be NULL")));
	probes = arg_int4_array(fcinfo, 5, "probes", &n);
	if (n == 0 || n % topk->nq != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("probes must list the same number of clusters, at least one, for each of the %d queries (got %d)",
						topk->nq, n)));
	per_query = n / topk->nq;
	pairs = palloc(sizeof(ProbePair) * n);
	for (int i = 0; i < n; i++)
	{
		pairs[i].cluster = probes[i];
		pairs[i].query = i / per_query;
	}
	qsort(pairs, n, sizeof(ProbePair), pair_cmp);
	p->probe_queries = palloc(sizeof(int) * n);
	p->blocks = palloc0(sizeof(ClusterBlock) * n);
	for (int i = 0; i < n; i++)
	{
		ClusterBlock *last = p->nblocks > 0 ? &p->blocks[p->nblocks - 1] : NULL;

		if (i > 0 && pairs[i].cluster == pairs[i - 1].cluster && pairs[i].query == pairs[i - 1].query)
			continue;			/* listed twice for this query */
		if (last == NULL || last->cluster != pairs[i].cluster)
		{
			last = &p->blocks[p->nblocks++];
			last->cluster = pairs[i].cluster;
			last->first = npairs;
		}
		last->nq++;
		p->probe_queries[npairs++] = pairs[i].query;
	}
	pfree(pairs);
	p->topk = topk;
	MemoryContextSwitchTo(old);
	return p;
}

static ClusterBlock *
block_of(ProbeState *p, int32 cluster)
{
	int			lo = 0;
	int			hi = p->nblocks - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (p->blocks[mid].cluster == cluster)
			return &p->blocks[mid];
		if (p->blocks[mid].cluster < cluster)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static void
flush_cluster(ProbeState *p, ClusterBlock *b)
{
	TopkState  *s = p->topk;

	if (b->buffered == 0)
		return;
	score_rows(s, b->rows, b->norms, b->keys, b->buffered, p->probe_queries + b->first, b->nq);
	if (!s->top.key_byval)
		for (int r = 0; r < b->buffered; r++)
			pfree(DatumGetPointer(b->keys[r]));
	b->buffered = 0;
}

/* Every waiting block scored, and every block's memory given back (they are made again as rows come). */
static void
release_blocks(ProbeState *p)
{
	for (int i = 0; i < p->nblocks; i++)
	{
		ClusterBlock *b = &p->blocks[i];

		if (b->rows == NULL)
			continue;
		flush_cluster(p, b);
		pfree(b->rows_block);
		pfree(b->norms);
		pfree(b->keys);
		b->rows = NULL;
	}
	p->block_bytes = 0;
}

PG_FUNCTION_INFO_V1(kernel_probe_topk_step);
Datum
kernel_probe_topk_step(PG_FUNCTION_ARGS)
{
	MemoryContext context;
	ProbeState *p;
	TopkState  *s;
	ClusterBlock *b;
	const KVector *v;
	MemoryContext old;

	if (!AggCheckCallContext(fcinfo, &context))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("probe_topk is an aggregate")));
	p = PG_ARGISNULL(0) ? new_probe_state(fcinfo, context) : (ProbeState *) PG_GETARG_POINTER(0);
	s = p->topk;
	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_POINTER(p);	/* no cluster, or no vector: a row no query reads */
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a row's key is NULL: keys must not be NULL")));
	b = block_of(p, PG_GETARG_INT32(2));
	if (b == NULL)
		PG_RETURN_POINTER(p);
	v = arg_vector(fcinfo, 3, "the row's vector");
	check_same_dims(s->dim, v->dim);
	if (b->rows == NULL && p->block_bytes + s->stride * PROBE_BLOCK_ROWS > PROBE_BLOCK_MEMORY)
		release_blocks(p);
	old = MemoryContextSwitchTo(context);
	if (b->rows == NULL)
	{
		p->block_bytes += s->stride * PROBE_BLOCK_ROWS;
		b->rows = aligned_copies(s->stride, PROBE_BLOCK_ROWS, &b->rows_block);
		b->norms = palloc(sizeof(double) * PROBE_BLOCK_ROWS);
		b->keys = palloc(sizeof(Datum) * PROBE_BLOCK_ROWS);
	}
	memcpy(b->rows + (Size) b->buffered * s->stride, v, s->vector_size);
	b->norms[b->buffered] = norm_of(v);
	b->keys[b->buffered] = datumCopy(PG_GETARG_DATUM(1), s->top.key_byval, s->top.key_len);
	MemoryContextSwitchTo(old);
	if (++b->buffered == PROBE_BLOCK_ROWS)
		flush_cluster(p, b);
	PG_RETURN_POINTER(p);
}

PG_FUNCTION_INFO_V1(kernel_probe_topk_final);
Datum
kernel_probe_topk_final(PG_FUNCTION_ARGS)
{
	ProbeState *p;

	if (!AggCheckCallContext(fcinfo, NULL))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("probe_topk is an aggregate")));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	p = (ProbeState *) PG_GETARG_POINTER(0);
	for (int i = 0; i < p->nblocks; i++)
		flush_cluster(p, &p->blocks[i]);
	elog(DEBUG1, "probe_topk: %ld pairs scored, %ld checked exactly, %d clusters", p->topk->scored,
		 p->topk->checked, p->nblocks);
	PG_RETURN_DATUM(key_heaps_result(&p->topk->top, fcinfo, "probe_topk"));
}
