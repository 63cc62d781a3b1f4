/*
 * estimate_topk: one read of a relation's compact codes (or of the rows a WHERE clause keeps), the top k of
 * many queries by their estimated distances.
 *
 *   SELECT pgembed_kernels.estimate_topk(id, embedding_pq48, $tables, $k) FROM docs WHERE ...
 *
 * `tables` holds one query table a row (a 2-D float8 array; pgembed.query_table makes each), all of one
 * estimator: pq_lut with bytea PQ codes, sq8_query with bytea int8 codes, bits_lut with bit-string codes.
 * For every query it returns what `ORDER BY <estimator>(code, table), key LIMIT k` over the rows whose code
 * is not NULL returns: the same rows, the same distances (bit for bit: the sums are of integers, exact in
 * float64 in any order, and the formulas after them are the per-row estimators' own functions), in the same
 * order (ties by key, in the key's collation). Its twin is that statement, once per query.
 *
 * Why it is fast: the per-row cost of a function call in SQL (about 1 us) is paid once a row for all the
 * queries, each table's entries are checked once, not on every call, and the int8 sums are vectorised.
 * An entry that is not a valid one is kept as NaN, and a NaN sum sends the row to the checking per-row code,
 * which raises its error. With several bad inputs the error raised may be another than the twin's first.
 * RaBitQ's estimator needs each row's factors and is not served here. tables and k are read from the first row
 * with a code.
 */
#include "kernels.h"

#include <string.h>

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

typedef enum CodeKind
{
	CODE_PQ,
	CODE_BITS,
	CODE_INT8
} CodeKind;

#define BLOCK_ROWS 64

typedef struct EstimateState
{
	int			nq;
	CodeKind	kind;
	int			n;				/* code bytes (pq, bits) or dimensions (int8) */
	int			centroids;		/* pq: below this every code byte */
	QueryTable *tables;			/* nq, over copies of the tables */
	/*
	 * Each query's entries as a table made for speed: pq, bits: entries[q][p * 256 + byte], exact as float32
	 * (integers below 2^24), so a query's table is half the size; int8: weights[q][run * n + i] (w, u, v).
	 * NaN where an entry is not a valid one.
	 */
	float	   *entries;
	double	   *weights;
	bool		shared_uv;		/* int8: every table's u and v are table 1's: T2 and T3 once a row */
	bool		need_t2;
	bool		need_t3;
	/* a block of rows, scored query by query so that one query's table stays in cache for all of them */
	int			buffered;
	uint8	   *codes;			/* BLOCK_ROWS x n code bytes */
	double	   *levels;			/* int8: BLOCK_ROWS x n levels L, and L^2 */
	double	   *squares;
	double	   *shared_t2;		/* int8, shared u and v: each row's T2 and T3 */
	double	   *shared_t3;
	Datum	   *keys;
	MemoryContext block_context;
	KeyHeaps	top;
} EstimateState;

static const char *
table_maker(double tag, double kind)
{
	if (tag == TAG_INT8)
		return "pgembed.sq8_query";
	if (kind == KIND_PQ)
		return "pgembed.pq_lut";
	return kind == KIND_BITS ? "pgembed.bits_lut" : "pgembed.rabitq_lut";
}

static EstimateState *
new_state(FunctionCallInfo fcinfo, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	EstimateState *s = palloc0(sizeof(EstimateState));
	ArrayType  *array;
	int			ndim;
	int			length;
	const float8 *all;
	double		tag;
	double		kind;
	Oid			code_type = get_fn_expr_argtype(fcinfo->flinfo, 2);
	bool		bit_string = code_type == VARBITOID || code_type == BITOID;
	Size		per_query;

	if (PG_ARGISNULL(3) || PG_ARGISNULL(4))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("tables and k must not be NULL")));
	array = PG_GETARG_ARRAYTYPE_P(3);
	ndim = ARR_NDIM(array);
	if (ndim < 1 || ndim > 2 || array_contains_nulls(array))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tables must be an array of query tables, one a row (2 dimensions), without NULLs")));
	s->nq = ndim == 1 ? 1 : ARR_DIMS(array)[0];
	length = ndim == 1 ? ARR_DIMS(array)[0] : ARR_DIMS(array)[1];
	all = (const float8 *) ARR_DATA_PTR(array);
	key_heaps_init(&s->top, fcinfo, 1, s->nq, PG_GETARG_INT32(4), context);
	if (length < TABLE_HEADER)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the table is not one of pgembed's query tables (pgembed.pq_lut, bits_lut, sq8_query)")));
	tag = all[0];
	kind = all[10];
	if (!(tag == TAG_BYTES || tag == TAG_INT8) ||
		(tag == TAG_BYTES && !(kind == KIND_PQ || kind == KIND_BITS || kind == KIND_RABITQ)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table 1 is not one of pgembed's query tables (pgembed.pq_lut, bits_lut, sq8_query)")));
	if (tag == TAG_INT8)
		kind = 0;
	if (tag == TAG_BYTES && kind == KIND_RABITQ)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("estimate_topk takes tables of pgembed.pq_lut, sq8_query or bits_lut; RaBitQ's estimator needs each row's factors (rank by pgembed.rabitq_distance)")));
	s->kind = tag == TAG_INT8 ? CODE_INT8 : (kind == KIND_BITS ? CODE_BITS : CODE_PQ);
	if (bit_string != (s->kind == CODE_BITS))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the tables were made by %s, whose codes are %s; the codes given are %s",
						table_maker(tag, kind), s->kind == CODE_BITS ? "bit strings" : "bytea",
						format_type_be(code_type))));
	/* the copies a query's table is made into: its entries as double (int8) or float (byte tables) */
	per_query = (s->kind == CODE_INT8 ? sizeof(double) : sizeof(float)) * (Size) (length - TABLE_HEADER);
	if ((double) (per_query + sizeof(float8) * length) * s->nq > MaxAllocSize / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%d queries' tables would take %.0f MB in one scan, above %zu MB: split the queries",
						s->nq, (double) (per_query + sizeof(float8) * length) * s->nq / 1048576,
						MaxAllocSize / 2 / 1048576)));
	s->tables = palloc(sizeof(QueryTable) * s->nq);
	for (int q = 0; q < s->nq; q++)
	{
		float8	   *copy = palloc(sizeof(float8) * length);

		memcpy(copy, all + (Size) q * length, sizeof(float8) * length);
		s->tables[q] = query_table_of(copy, length, (int) tag, (int) kind);
		if (copy[3] != all[3] || copy[11] != all[11])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("table %d is not of the same estimator and code size as table 1", q + 1)));
	}
	s->n = s->tables[0].n;
	s->centroids = s->kind == CODE_PQ ? (int) all[11] : 256;	/* pq: 1 to 256, as query_table_of checked */
	if (s->kind == CODE_INT8)
	{
		const int	n = s->n;

		s->weights = palloc(per_query * s->nq);
		s->shared_uv = true;
		for (int q = 0; q < s->nq; q++)
		{
			const double *e = s->tables[q].entries;
			double	   *w = s->weights + (Size) q * 3 * n;

			for (long i = 0; i < 3L * n; i++)
				w[i] = fabs(e[i]) <= WEIGHT_TOP && e[i] == rint(e[i]) ? e[i] : NAN;
			if (memcmp(e + n, s->tables[0].entries + n, sizeof(double) * 2 * n) != 0)
				s->shared_uv = false;
			s->need_t2 |= s->tables[q].metric == METRIC_COSINE;
			s->need_t3 |= s->tables[q].metric != METRIC_IP;
		}
		s->levels = palloc(sizeof(double) * BLOCK_ROWS * n);
		s->squares = palloc(sizeof(double) * BLOCK_ROWS * n);
		s->shared_t2 = palloc(sizeof(double) * BLOCK_ROWS);
		s->shared_t3 = palloc(sizeof(double) * BLOCK_ROWS);
	}
	else
	{
		s->entries = palloc(per_query * s->nq);
		for (int q = 0; q < s->nq; q++)
		{
			const double *e = s->tables[q].entries;
			float	   *f = s->entries + (Size) q * 256 * s->n;

			for (long i = 0; i < 256L * s->n; i++)
				f[i] = fabs(e[i]) <= BYTE_TOP && e[i] == rint(e[i]) ? (float) e[i] : NAN;
		}
	}
	s->codes = palloc((Size) BLOCK_ROWS * s->n);
	s->keys = palloc(sizeof(Datum) * BLOCK_ROWS);
	s->block_context = AllocSetContextCreate(context, "estimate_topk block", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(old);
	return s;
}

/*
 * The sums. Every term and partial sum is an integer below 2^53, so each sum is exact and does not depend on
 * the order of addition; nor does its sign when zero (-0.0 only if every term is), so the per-row estimators'
 * own sums, in their order, give the same doubles.
 */
static inline double
byte_terms(const float *entries, const uint8 *bytes, int n)
{
	double		acc[4] = {-0.0, -0.0, -0.0, -0.0};

	for (int p = 0; p < n; p++)
		acc[p & 3] += (double) entries[(Size) p * 256 + bytes[p]];
	return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static double
exact_dot_c(const double *w, const double *x, int n)
{
	double		acc[4] = {-0.0, -0.0, -0.0, -0.0};

	for (int i = 0; i < n; i++)
		acc[i & 3] += w[i] * x[i];
	return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(PGEMBED_SANITIZE)
#include <immintrin.h>
#define HAVE_AVX2_DOT 1

/* eight accumulators of four lanes: chains of n / 32 additions, two multiplies and adds a cycle */
__attribute__((target("avx2")))
static double
exact_dot_avx2(const double *w, const double *x, int n)
{
	__m256d		a[8];
	double		lanes[32];
	double		sum = -0.0;
	int			i = 0;

	for (int l = 0; l < 8; l++)
		a[l] = _mm256_set1_pd(-0.0);
	for (; i + 32 <= n; i += 32)
		for (int l = 0; l < 8; l++)
			a[l] = _mm256_add_pd(a[l], _mm256_mul_pd(_mm256_loadu_pd(w + i + 4 * l), _mm256_loadu_pd(x + i + 4 * l)));
	for (int l = 0; l < 8; l++)
		_mm256_storeu_pd(lanes + 4 * l, a[l]);
	for (; i < n; i++)
		sum += w[i] * x[i];
	for (int l = 0; l < 32; l++)
		sum += lanes[l];
	return sum;
}
#endif

static double
exact_dot(const double *w, const double *x, int n)
{
#ifdef HAVE_AVX2_DOT
	if (__builtin_cpu_supports("avx2"))
		return exact_dot_avx2(w, x, n);
#endif
	return exact_dot_c(w, x, n);
}

static void
flush_bytes(EstimateState *s)
{
	for (int q = 0; q < s->nq; q++)
	{
		const float *entries = s->entries + (Size) q * 256 * s->n;
		const QueryTable *table = &s->tables[q];

		for (int r = 0; r < s->buffered; r++)
		{
			const uint8 *bytes = s->codes + (Size) r * s->n;
			double		sum = byte_terms(entries, bytes, s->n);

			if (isnan(sum))
				sum = byte_sum(table, bytes, s->n, s->centroids);	/* raises */
			key_heaps_offer(&s->top, q, s->kind == CODE_PQ ? pq_value(table, sum) : bits_value(table, sum),
							s->keys[r]);
		}
	}
}

static void
flush_int8(EstimateState *s)
{
	const int	n = s->n;

	for (int q = 0; q < s->nq; q++)
	{
		const QueryTable *table = &s->tables[q];
		const double *w = s->weights + (Size) q * 3 * n;
		bool		t2 = table->metric == METRIC_COSINE;
		bool		t3 = table->metric != METRIC_IP;

		for (int r = 0; r < s->buffered; r++)
		{
			const double *levels = s->levels + (Size) r * n;
			double		T1 = exact_dot(w, levels, n);
			double		T2 = -0.0;
			double		T3 = -0.0;

			if (s->shared_uv)
			{
				T2 = s->shared_t2[r];
				T3 = s->shared_t3[r];
			}
			else
			{
				if (t2)
					T2 = exact_dot(w + n, levels, n);
				if (t3)
					T3 = exact_dot(w + 2 * n, s->squares + (Size) r * n, n);
			}
			if (isnan(T1) || (t2 && isnan(T2)) || (t3 && isnan(T3)))
				sq8_sums(table, s->codes + (Size) r * n, &T1, &T2, &T3);	/* raises */
			key_heaps_offer(&s->top, q, sq8_value(table, T1, T2, T3), s->keys[r]);
		}
	}
}

static void
flush_block(EstimateState *s)
{
	if (s->buffered == 0)
		return;
	if (s->kind == CODE_INT8)
		flush_int8(s);
	else
		flush_bytes(s);
	s->buffered = 0;
	MemoryContextReset(s->block_context);
}

/* The row into the block: its code checked as the per-row estimator checks it, its key copied. */
static void
buffer_row(EstimateState *s, const uint8 *code, Datum key)
{
	const int	r = s->buffered;
	const int	n = s->n;
	MemoryContext old;

	if (s->kind == CODE_PQ)
		for (int p = 0; p < n; p++)
			if (code[p] >= s->centroids)
				byte_sum(&s->tables[0], code, n, s->centroids);	/* raises */
	memcpy(s->codes + (Size) r * n, code, n);
	if (s->kind == CODE_INT8)
	{
		double	   *levels = s->levels + (Size) r * n;
		double	   *squares = s->squares + (Size) r * n;

		for (int i = 0; i < n; i++)
		{
			levels[i] = code[i];
			squares[i] = (double) code[i] * code[i];
		}
		if (s->shared_uv)
		{
			s->shared_t2[r] = s->need_t2 ? exact_dot(s->weights + n, levels, n) : -0.0;
			s->shared_t3[r] = s->need_t3 ? exact_dot(s->weights + 2 * n, squares, n) : -0.0;
		}
	}
	old = MemoryContextSwitchTo(s->block_context);
	s->keys[r] = datumCopy(key, s->top.key_byval, s->top.key_len);
	MemoryContextSwitchTo(old);
	if (++s->buffered == BLOCK_ROWS)
		flush_block(s);
}

PG_FUNCTION_INFO_V1(kernel_estimate_topk_step);
Datum
kernel_estimate_topk_step(PG_FUNCTION_ARGS)
{
	MemoryContext context;
	EstimateState *s;

	if (!AggCheckCallContext(fcinfo, &context))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("estimate_topk is an aggregate")));
	if (PG_ARGISNULL(2))		/* a row without a code is not ranked; the tables are read at the first code */
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	s = PG_ARGISNULL(0) ? new_state(fcinfo, context) : (EstimateState *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a row's key is NULL: keys must not be NULL")));
	if (s->kind == CODE_BITS)
	{
		const VarBit *code = arg_varbit(fcinfo, 2);

		check_bits_code(&s->tables[0], code);
		buffer_row(s, VARBITS(code), PG_GETARG_DATUM(1));
	}
	else
	{
		int			len;
		const uint8 *code = arg_bytea(fcinfo, 2, &len);

		if (s->kind == CODE_PQ)
		{
			check_code_bytes(&s->tables[0], len);
			buffer_row(s, code, PG_GETARG_DATUM(1));
		}
		else
		{
			check_code_bytes(&s->tables[0], len);
			buffer_row(s, code, PG_GETARG_DATUM(1));
		}
	}
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(kernel_estimate_topk_final);
Datum
kernel_estimate_topk_final(PG_FUNCTION_ARGS)
{
	EstimateState *s;

	if (!AggCheckCallContext(fcinfo, NULL))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("estimate_topk is an aggregate")));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (EstimateState *) PG_GETARG_POINTER(0);
	flush_block(s);
	PG_RETURN_DATUM(key_heaps_result(&s->top, fcinfo, "estimate_topk"));
}
