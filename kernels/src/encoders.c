/*
 * Encoders: a vector and a codec's fitted parameters in, the code out, exactly as pgembed's twins
 * (sql/functions/codecs.sql) compute it.
 *
 * The twins do their arithmetic with pgvector's elementwise operators, in float32. Those raise where a
 * result leaves float32's range ("value out of range: overflow / underflow"); a twin then computes the same
 * IEEE float32 arithmetic without raising (its infinities and zeros), and so does every kernel here, always:
 * no finite vector is refused. Where a twin sums with pgvector (`<#>`, vector_norm, l1_distance), the kernel
 * calls the same pgvector function, and where that sum is not finite both take the same float64 path.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

#include "nodes/pg_list.h"
#include "nodes/primnodes.h"
#include "utils/builtins.h"

PG_MODULE_MAGIC_EXT(.name = "pgembed_kernels", .version = "1.1");

#define BYTE_CENTROIDS 256

static VarBit *
new_bits(long nbits)
{
	Size		size;
	VarBit	   *bits;

	if (nbits < 0 || nbits > VARBITMAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a code of %ld bits is too long", nbits)));
	size = VARBITTOTALLEN(nbits);
	bits = result_alloc(size);
	SET_VARSIZE(bits, size);
	VARBITLEN(bits) = (int32) nbits;
	return bits;
}

static inline void
set_bit(VarBit *bits, long position)
{
	VARBITS(bits)[position >> 3] |= (bits8) (0x80 >> (position & 7));
}

/* Bit base + i set where v[i] > t[i], for i < n; whole bytes at a time where base falls on one. */
static void
set_bits_greater(VarBit *bits, long base, const float *v, const float *t, int n)
{
	int			i = 0;

	if ((base & 7) == 0)
	{
		bits8	   *out = VARBITS(bits) + (base >> 3);

		for (; i + 8 <= n; i += 8)
		{
			unsigned	byte = 0;

			for (int l = 0; l < 8; l++)
				byte |= (unsigned) (v[i + l] > t[i + l]) << (7 - l);
			out[i >> 3] |= (bits8) byte;
		}
	}
	for (; i < n; i++)
		if (v[i] > t[i])
			set_bit(bits, base + i);
}

static Datum
bits_datum(VarBit *bits)
{
	return result_datum(bits, VARSIZE(bits));
}

static bytea *
new_bytea(int len)
{
	bytea	   *value = result_alloc(VARHDRSZ + len);

	SET_VARSIZE(value, VARHDRSZ + len);
	return value;
}

/* least(greatest(round(s::float8), 0), top) as PostgreSQL evaluates it: NaN is the greatest value. */
static inline int
clip_level(float s, int top)
{
	double		e = (double) s;

	if (isnan(e))
		return top;
	e = rint(e);
	if (e <= 0)
		return 0;
	if (e >= top)
		return top;
	return (int) e;
}

/* --- float16: saturating, so that no finite vector is refused (pgvector's cast raises past 65504) --- */
PG_FUNCTION_INFO_V1(kernel_encode_float16);
Datum
kernel_encode_float16(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	Size		size = KHALFVEC_SIZE(v->dim);
	KHalfVector *code = result_alloc(size);

	SET_VARSIZE(code, size);
	code->dim = v->dim;
	for (int i = 0; i < v->dim; i++)
	{
		float		x = v->x[i];

		code->x[i] = float_to_half(x > 65504.0f ? 65504.0f : (x < -65504.0f ? -65504.0f : x));
	}
	PG_RETURN_DATUM(result_datum(code, size));
}

/* --- binary and thermometer codes: bit i is v_i > t_i (the sign of v - t, overflow or not) --- */
PG_FUNCTION_INFO_V1(kernel_encode_binary);
Datum
kernel_encode_binary(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	const KVector *mean = arg_vector(fcinfo, 1, "mean");
	VarBit	   *code;

	check_same_dims(v->dim, mean->dim);
	code = new_bits(v->dim);
	set_bits_greater(code, 0, v->x, mean->x, v->dim);
	PG_RETURN_DATUM(bits_datum(code));
}

PG_FUNCTION_INFO_V1(kernel_encode_thermometer);
Datum
kernel_encode_thermometer(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	VectorList	thresholds = arg_vector_array(fcinfo, 1, "thresholds");
	VarBit	   *code;

	if (thresholds.n == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("thresholds is empty")));
	for (int j = 0; j < thresholds.n; j++)
		check_same_dims(v->dim, thresholds.items[j]->dim);
	code = new_bits((long) thresholds.n * v->dim);
	for (int j = 0; j < thresholds.n; j++)
		set_bits_greater(code, (long) j * v->dim, v->x, thresholds.items[j]->x, v->dim);
	PG_RETURN_DATUM(bits_datum(code));
}

/* --- scalar quantization: level = clip(rint((v - lo) * inv)), float32 as pgvector's - and * --- */
PG_FUNCTION_INFO_V1(kernel_encode_int8);
Datum
kernel_encode_int8(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	const KVector *lo = arg_vector(fcinfo, 1, "lo");
	const KVector *inv = arg_vector(fcinfo, 2, "inv");
	bytea	   *code;
	uint8	   *out;

	check_same_dims(v->dim, lo->dim);
	check_same_dims(v->dim, inv->dim);
	code = new_bytea(v->dim);
	out = (uint8 *) VARDATA(code);
	for (int i = 0; i < v->dim; i++)
	{
		float		d = v->x[i] - lo->x[i];
		float		s = d * inv->x[i];

		out[i] = (uint8) clip_level(s, 255);
	}
	PG_RETURN_DATUM(result_datum(code, VARSIZE(code)));
}

PG_FUNCTION_INFO_V1(kernel_encode_sq_bits);
Datum
kernel_encode_sq_bits(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	const KVector *lo = arg_vector(fcinfo, 1, "lo");
	const KVector *inv = arg_vector(fcinfo, 2, "inv");
	int			n;
	const int32 *bits = arg_int4_array(fcinfo, 3, "bits", &n);
	long		total = 0;
	long		position = 0;
	uint32		pending = 0;
	int			held = 0;
	bits8	   *out;
	VarBit	   *code;

	check_same_dims(v->dim, lo->dim);
	check_same_dims(v->dim, inv->dim);
	if (n != v->dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bits has %d entries for %d dimensions", n, v->dim)));
	for (int i = 0; i < n; i++)
	{
		if (bits[i] < 0 || bits[i] > 8)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bits[%d] is %d: a dimension takes 0 to 8 bits", i + 1, bits[i])));
		total += bits[i];
	}
	code = new_bits(total);
	out = VARBITS(code);
	/* each level's bits, most significant first, gathered in `pending` and written a byte at a time */
	for (int i = 0; i < n; i++)
	{
		int			b = bits[i];
		float		d;
		float		s;

		if (b == 0)
			continue;
		d = v->x[i] - lo->x[i];
		s = d * inv->x[i];
		pending = (pending << b) | (uint32) clip_level(s, (1 << b) - 1);
		held += b;
		if (held >= 8)
		{
			held -= 8;
			out[position++] = (bits8) (pending >> held);
			pending &= (1u << held) - 1;
		}
	}
	if (held > 0)
		out[position] = (bits8) (pending << (8 - held));
	PG_RETURN_DATUM(bits_datum(code));
}

/*
 * --- product quantization ---
 * Sub-space m's K scores start at norms[m] (|c_j|^2) and lose (2 x_k) * columns[m * sub_dim + k] for each
 * of its sub_dim coordinates, one float32 subtraction after one float32 product, in that order: the twin's
 * elementwise pgvector expression. The code byte is the first index of the smallest score (NaN last).
 */
PQShape
pq_shape(const KVector *v, VectorList columns, VectorList norms, int32 sub_dim)
{
	PQShape		shape;

	if (sub_dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sub_dim must be positive, got %d", sub_dim)));
	if (norms.n == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("norms is empty")));
	shape.m = norms.n;
	shape.sub = sub_dim;
	shape.centroids = norms.items[0]->dim;
	if ((long) shape.m * sub_dim != v->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the vector has %d dimensions; the codebook has %d sub-spaces of %d",
						v->dim, shape.m, sub_dim)));
	if (columns.n != v->dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("columns has %d vectors; the codebook needs %d (sub-spaces x sub_dim)", columns.n, v->dim)));
	if (shape.centroids > BYTE_CENTROIDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a codebook of %d centroids does not fit in one byte a sub-space", shape.centroids)));
	for (int i = 0; i < norms.n; i++)
		check_same_dims(shape.centroids, norms.items[i]->dim);
	for (int i = 0; i < columns.n; i++)
		check_same_dims(shape.centroids, columns.items[i]->dim);
	return shape;
}

/*
 * One sub-space's code byte: the first index of its smallest score, NaN counting as greater than every number
 * (PostgreSQL's order, as the twin's ORDER BY score, index; -0 equals 0). Each centroid's score is the same
 * float32 operations in the same order as the twin's, so the same bits.
 */
static float
pq_score(const float *norms, const float *const *columns, const float *two_x, int sub, int j)
{
	float		acc = norms[j];

	for (int k = 0; k < sub; k++)
		acc = acc - two_x[k] * columns[k][j];
	return acc;
}

/* Every score, in PostgreSQL's order: for the rare sub-space whose least score is infinite or NaN. */
static int
pq_nearest_exactly(const float *norms, const float *const *columns, const float *two_x, int sub, int K)
{
	int			best = 0;
	float		best_score = pq_score(norms, columns, two_x, sub, 0);

	for (int j = 1; j < K; j++)
	{
		float		score = pq_score(norms, columns, two_x, sub, j);

		if (float8_lt_pg(score, best_score))
		{
			best = j;
			best_score = score;
		}
	}
	return best;
}

/* Any machine: centroid by centroid. */
static int
pq_nearest_portable(const float *norms, const float *const *columns, const float *two_x, int sub, int K)
{
	float		best_score = INFINITY;
	int			best = -1;

	for (int j = 0; j < K; j++)
	{
		float		score = pq_score(norms, columns, two_x, sub, j);

		if (score < best_score)	/* never for NaN or +Inf */
		{
			best_score = score;
			best = j;
		}
	}
	return best < 0 ? pq_nearest_exactly(norms, columns, two_x, sub, K) : best;
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(PGEMBED_SANITIZE)
#include <immintrin.h>
#define PQ_AVX 1

/*
 * With AVX, for 8 centroids at a time: the sub-space's scores in a buffer, each coordinate in turn taken off
 * all of them (mul, then sub: the portable order, never fused); then each lane's least score and first index.
 */
__attribute__((target("avx")))
static int
pq_nearest_avx(const float *norms, const float *const *columns, const float *two_x, int sub, int K)
{
	float		scores[BYTE_CENTROIDS] __attribute__((aligned(32)));
	float		least_out[8];
	float		where_out[8];
	__m256		least = _mm256_set1_ps(INFINITY);
	__m256		where = _mm256_set1_ps(-1);
	__m256		index = _mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0);
	__m256		eight = _mm256_set1_ps(8);
	float		best_score = INFINITY;
	float		best = -1;
	int			blocks = K / 8;

	for (int b = 0; b < blocks; b++)
		_mm256_store_ps(scores + 8 * b, _mm256_loadu_ps(norms + 8 * b));
	for (int k = 0; k < sub; k++)
	{
		__m256		t = _mm256_set1_ps(two_x[k]);
		const float *c = columns[k];

		for (int b = 0; b < blocks; b++)
			_mm256_store_ps(scores + 8 * b, _mm256_sub_ps(_mm256_load_ps(scores + 8 * b),
														   _mm256_mul_ps(t, _mm256_loadu_ps(c + 8 * b))));
	}
	for (int b = 0; b < blocks; b++)
	{
		__m256		s = _mm256_load_ps(scores + 8 * b);
		__m256		smaller = _mm256_cmp_ps(s, least, _CMP_LT_OQ);	/* false for NaN, +Inf */

		least = _mm256_blendv_ps(least, s, smaller);
		where = _mm256_blendv_ps(where, index, smaller);
		index = _mm256_add_ps(index, eight);
	}
	_mm256_storeu_ps(least_out, least);
	_mm256_storeu_ps(where_out, where);
	for (int l = 0; l < 8; l++)
		if (where_out[l] >= 0 && (least_out[l] < best_score || (least_out[l] == best_score && where_out[l] < best)))
		{
			best_score = least_out[l];
			best = where_out[l];
		}
	for (int j = blocks * 8; j < K; j++)
	{
		float		score = pq_score(norms, columns, two_x, sub, j);

		if (score < best_score)
		{
			best_score = score;
			best = (float) j;
		}
	}
	return best < 0 ? pq_nearest_exactly(norms, columns, two_x, sub, K) : (int) best;
}
#endif

static int
pq_nearest(const float *norms, const float *const *columns, const float *two_x, int sub, int K)
{
#ifdef PQ_AVX
	static int	has_avx = -1;

	if (has_avx < 0)
		has_avx = __builtin_cpu_supports("avx") ? 1 : 0;
	if (has_avx)
		return pq_nearest_avx(norms, columns, two_x, sub, K);
#endif
	return pq_nearest_portable(norms, columns, two_x, sub, K);
}

/*
 * --- a codebook prepared once for many rows ---
 * When the codebook is a constant of the calling expression (a trigger's or a backfill's encoder call, whose
 * fitted parameters the planner folds into constants), the first call keeps in flinfo->fn_extra an int8 copy of
 * it (a scale a coordinate and sub-space, a quarter of the bytes) and a copy with each centroid's coordinates
 * adjacent. A row's sub-space is then scored approximately from the int8 copy; only the centroids whose
 * approximate score is within 2W of the least one, where W bounds |exact - approximate| for every centroid, get
 * their exact score (the twin's float32 operations, in its order, on the same values) and compete, in index
 * order. So the code byte is the one pq_nearest picks. Where a value leaves the range the bound is proved for
 * (non-finite, or nonzero below 2^-60 or above 2^60), every centroid of the sub-space gets its exact score
 * (pq_nearest_copy). The later rows of the expression are encoded from these copies (and a copy of the norms)
 * without reading the arguments again: being constants, they are the ones checked at the first call.
 *
 * The bound, with u = 2^-24, g = (sub + 1) u / (1 - (sub + 1) u), t_k = 2 x_k, c the centroids, n their squared
 * norms, s_k and L the scales and levels, w_k = fl(t_k s_k): exact float32 scores E_j are within
 * g (max|n| + sum |t_k| max|c_k|) of the real n_j - sum t_k c_kj; the approximate A_j within
 * g (max|n| + 127 sum |w_k|) of n_j - sum w_k L_kj, which is within u 127 sum |t_k| s_k + sum |t_k| d_k of that
 * real score (d_k: the measured largest |c_kj - s_k L_kj|); products that underflow add at most 2^-149 each,
 * and a w_k that underflows 2^-149 times 127 for each of its levels.
 */
#define PQ_RANGE_LOW 8.673617379884035e-19	/* 2^-60 */
#define PQ_RANGE_HIGH 1.152921504606847e18	/* 2^60 */
#define PQ_PREPARED_MAX_SUB 64				/* coordinates a sub-space, for a prepared codebook */

typedef struct PQPrepared
{
	Datum		columns;		/* the constant arguments it was made from */
	Datum		norms_datum;
	int			m;
	int			sub;
	int			K;
	float	   *norms;			/* m x K */
	float	   *centroids;		/* m x K x sub */
	int8	   *levels;			/* m x sub x K */
	float	   *scales;			/* m x sub */
	double	   *deviation;		/* m x sub */
	double	   *largest;		/* m x sub */
	double	   *norm_largest;	/* m */
} PQPrepared;

static bool
in_bound_range(double x)
{
	double		a = fabs(x);

	return a == 0 || (a >= PQ_RANGE_LOW && a <= PQ_RANGE_HIGH);
}

/* Whether p was made from this call's very arguments (constants: the same datums at every call). */
static bool
prepared_for(const PQPrepared *p, FunctionCallInfo fcinfo)
{
	return p->columns == PG_GETARG_DATUM(1) && p->norms_datum == PG_GETARG_DATUM(2) && p->sub == PG_GETARG_INT32(3);
}

/* The codebook prepared at an earlier call for these very constant arguments, or NULL. */
static PQPrepared *
pq_prepared_again(FunctionCallInfo fcinfo)
{
	PQPrepared *p = (PQPrepared *) fcinfo->flinfo->fn_extra;

	return p != NULL && p->centroids != NULL && prepared_for(p, fcinfo) ? p : NULL;
}

/* The prepared codebook for this call, or NULL: the arguments are not constants, or a value is out of range. */
static PQPrepared *
pq_prepared(FunctionCallInfo fcinfo, VectorList columns, VectorList norms, PQShape shape)
{
	PQPrepared *p = (PQPrepared *) fcinfo->flinfo->fn_extra;
	MemoryContext old;
	const int	m = shape.m;
	const int	sub = shape.sub;
	const int	K = shape.centroids;

	/* made once an expression: its arguments are constants, so a second look finds the same ones */
	if (p != NULL)
		return p->centroids != NULL && prepared_for(p, fcinfo) ? p : NULL;
	if (!arg_is_constant(fcinfo, 1) || !arg_is_constant(fcinfo, 2) || !arg_is_constant(fcinfo, 3) || K % 8 != 0 ||
		sub > PQ_PREPARED_MAX_SUB)
		return NULL;
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	p = palloc0(sizeof(PQPrepared));
	p->columns = PG_GETARG_DATUM(1);
	p->norms_datum = PG_GETARG_DATUM(2);
	p->m = m;
	p->sub = sub;
	p->K = K;
	p->centroids = NULL;		/* until every value is found in range: NULL means "not usable" */
	fcinfo->flinfo->fn_extra = p;
	for (int i = 0; i < m; i++)
		for (int j = 0; j < K; j++)
			if (!isfinite(norms.items[i]->x[j]) || fabs(norms.items[i]->x[j]) > PQ_RANGE_HIGH)
			{
				MemoryContextSwitchTo(old);
				return NULL;
			}
	for (int i = 0; i < m * sub; i++)
		for (int j = 0; j < K; j++)
			if (!isfinite(columns.items[i]->x[j]) || !in_bound_range(columns.items[i]->x[j]))
			{
				MemoryContextSwitchTo(old);
				return NULL;
			}
	p->norms = palloc(sizeof(float) * (Size) m * K);
	for (int s = 0; s < m; s++)
		memcpy(p->norms + (Size) s * K, norms.items[s]->x, sizeof(float) * K);
	p->centroids = palloc(sizeof(float) * (Size) m * K * sub);
	p->levels = palloc((Size) m * sub * K);
	p->scales = palloc(sizeof(float) * m * sub);
	p->deviation = palloc(sizeof(double) * m * sub);
	p->largest = palloc(sizeof(double) * m * sub);
	p->norm_largest = palloc(sizeof(double) * m);
	for (int s = 0; s < m; s++)
	{
		double		nl = 0;

		for (int j = 0; j < K; j++)
			nl = Max(nl, fabs((double) norms.items[s]->x[j]));
		p->norm_largest[s] = nl;
		for (int k = 0; k < sub; k++)
		{
			const float *c = columns.items[s * sub + k]->x;
			int8	   *level = p->levels + ((Size) s * sub + k) * K;
			double		largest = 0;
			double		deviation = 0;
			float		scale;

			for (int j = 0; j < K; j++)
			{
				largest = Max(largest, fabs((double) c[j]));
				p->centroids[((Size) s * K + j) * sub + k] = c[j];
			}
			scale = (float) (largest / 127);
			for (int j = 0; j < K; j++)
			{
				double		l = scale > 0 ? rint((double) c[j] / scale) : 0;

				l = Max(-127, Min(127, l));
				level[j] = (int8) l;
				deviation = Max(deviation, fabs((double) c[j] - (double) scale * l));
			}
			p->scales[s * sub + k] = scale;
			p->deviation[s * sub + k] = deviation * (1 + 0x1p-40);
			p->largest[s * sub + k] = largest;
		}
	}
	MemoryContextSwitchTo(old);
	elog(DEBUG1, "encode_pq: codebook prepared, %d sub-spaces of %d centroids", m, K);
	return p;
}

/*
 * scores[j] = n_j - sum_k w_k L_kj in float32, for one sub-space (any rounding: the bound covers one or two
 * per step), and the least of them.
 */
static float
pq_approximate_c(float *restrict scores, const float *norms, const int8 *restrict levels, const float *w, int sub,
				 int K)
{
	float		least = INFINITY;

	for (int j = 0; j < K; j++)
		scores[j] = norms[j];
	for (int k = 0; k < sub; k++)
	{
		const int8 *l = levels + (Size) k * K;
		const float wk = w[k];

		for (int j = 0; j < K; j++)
			scores[j] = scores[j] - wk * (float) l[j];
	}
	for (int j = 0; j < K; j++)
		least = scores[j] < least ? scores[j] : least;
	return least;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(PGEMBED_SANITIZE)
#define PQ_AVX2 1

/* 64 centroids at a time in eight registers, every level of theirs read once, fused multiply-subtracts */
__attribute__((target("avx2,fma")))
static float
pq_approximate_avx2(float *restrict scores, const float *norms, const int8 *restrict levels, const float *w,
					int sub, int K)
{
	__m256		least = _mm256_set1_ps(INFINITY);
	float		lanes[8];
	float		out = INFINITY;

	for (int c = 0; c < K; c += 64)
	{
		__m256		acc[8];

		for (int r = 0; r < 8; r++)
			acc[r] = _mm256_loadu_ps(norms + c + 8 * r);
		for (int k = 0; k < sub; k++)
		{
			const int8 *l = levels + (Size) k * K + c;
			__m256		wk = _mm256_set1_ps(w[k]);

			for (int r = 0; r < 8; r++)
			{
				__m128i		bytes = _mm_loadl_epi64((const __m128i *) (l + 8 * r));

				acc[r] = _mm256_fnmadd_ps(wk, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)), acc[r]);
			}
		}
		for (int r = 0; r < 8; r++)
		{
			_mm256_storeu_ps(scores + c + 8 * r, acc[r]);
			least = _mm256_min_ps(least, acc[r]);
		}
	}
	_mm256_storeu_ps(lanes, least);
	for (int l = 0; l < 8; l++)
		out = lanes[l] < out ? lanes[l] : out;
	return out;
}

/* mask[b] bit i: scores[8 b + i] <= limit */
__attribute__((target("avx2")))
static void
pq_candidates_avx2(const float *scores, int K, float limit, uint8 *mask)
{
	__m256		l = _mm256_set1_ps(limit);

	for (int b = 0; b < K / 8; b++)
		mask[b] = (uint8) _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(scores + 8 * b), l, _CMP_LE_OQ));
}
#endif

static void
pq_candidates(const float *scores, int K, float limit, uint8 *mask)
{
#ifdef PQ_AVX2
	if (K % 64 == 0 && __builtin_cpu_supports("avx2"))
	{
		pq_candidates_avx2(scores, K, limit, mask);
		return;
	}
#endif
	memset(mask, 0, (K + 7) / 8);
	for (int j = 0; j < K; j++)
		if (scores[j] <= limit)
			mask[j / 8] |= (uint8) (1 << (j % 8));
}

static float
pq_approximate(float *restrict scores, const float *norms, const int8 *restrict levels, const float *w, int sub,
			   int K)
{
#ifdef PQ_AVX2
	if (K % 64 == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return pq_approximate_avx2(scores, norms, levels, w, sub, K);
#endif
	return pq_approximate_c(scores, norms, levels, w, sub, K);
}

/* Centroid j's exact score in sub-space s from the copies: pq_score's values, operations and order. */
static inline float
copy_score(const PQPrepared *p, int s, int j, const float *two_x)
{
	const float *c = p->centroids + ((Size) s * p->K + j) * p->sub;
	float		score = p->norms[(Size) s * p->K + j];

	for (int k = 0; k < p->sub; k++)
		score = score - two_x[k] * c[k];
	return score;
}

/* pq_nearest on the prepared copies: every centroid's exact score, the first least (NaN last, as PostgreSQL) */
static int
pq_nearest_copy(const PQPrepared *p, int s, const float *two_x)
{
	int			best = 0;
	float		best_score = copy_score(p, s, 0, two_x);

	for (int j = 1; j < p->K; j++)
	{
		float		score = copy_score(p, s, j, two_x);

		if (float8_lt_pg(score, best_score))
		{
			best = j;
			best_score = score;
		}
	}
	return best;
}

static int
pq_nearest_pruned(const PQPrepared *p, int s, const float *two_x)
{
	const float *norms = p->norms + (Size) s * p->K;
	const int	sub = p->sub;
	const int	K = p->K;
	float		scores[BYTE_CENTROIDS];
	float		w[PQ_PREPARED_MAX_SUB];
	double		u = ldexp(1.0, -24);
	double		g = (sub + 1) * u / (1 - (sub + 1) * u);
	double		sum_tc = 0;
	double		sum_w = 0;
	double		sum_ts = 0;
	double		quantized = 0;
	double		bound;
	float		least;
	double		threshold;
	float		limit;
	uint8		mask[BYTE_CENTROIDS / 8];
	int			best = -1;
	float		best_score = INFINITY;

	for (int k = 0; k < sub; k++)
	{
		double		t = fabs((double) two_x[k]);

		if (!isfinite(two_x[k]) || !in_bound_range(two_x[k]))
			return pq_nearest_copy(p, s, two_x);
		w[k] = two_x[k] * p->scales[s * sub + k];
		sum_tc += t * p->largest[s * sub + k];
		sum_w += fabs((double) w[k]) * 127;
		sum_ts += t * p->scales[s * sub + k] * 127;
		quantized += t * p->deviation[s * sub + k];
	}
	least = pq_approximate(scores, norms, p->levels + (Size) s * sub * K, w, sub, K);
	if (!isfinite(least))
		return pq_nearest_copy(p, s, two_x);
	bound = (quantized + g * (p->norm_largest[s] + sum_tc) + g * (p->norm_largest[s] + sum_w) + u * sum_ts +
			 (2 * sub + 2 + 127 * sub) * ldexp(1.0, -149)) * (1 + 0x1p-20);
	threshold = (double) least + 2 * bound;
	/* as a float no smaller, so that the float comparison keeps every centroid the exact one would */
	limit = (float) threshold;
	if ((double) limit < threshold)
		limit = nextafterf(limit, INFINITY);
	pq_candidates(scores, K, limit, mask);
	for (int j = 0; j < K; j++)
	{
		float		score;

		if (mask[j / 8] == 0)
		{
			j += 7 - j % 8;		/* the rest of this byte's centroids */
			continue;
		}
		if (!(mask[j / 8] & (1 << (j % 8))))
			continue;
		score = copy_score(p, s, j, two_x);
		if (!isfinite(score))
			return pq_nearest_copy(p, s, two_x);
		if (score < best_score)
		{
			best_score = score;
			best = j;
		}
	}
	return best < 0 ? pq_nearest_copy(p, s, two_x) : best;
}

/* A row's code from a prepared codebook: the arguments were checked when it was made, the vector is now. */
static Datum
encode_pq_prepared(const PQPrepared *p, const KVector *v)
{
	bytea	   *code;
	uint8	   *out;
	float		two_x[PQ_PREPARED_MAX_SUB];

	if ((long) p->m * p->sub != v->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the vector has %d dimensions; the codebook has %d sub-spaces of %d",
						v->dim, p->m, p->sub)));
	code = new_bytea(p->m);
	out = (uint8 *) VARDATA(code);
	for (int m = 0; m < p->m; m++)
	{
		for (int k = 0; k < p->sub; k++)
			two_x[k] = 2.0f * v->x[m * p->sub + k];
		out[m] = (uint8) pq_nearest_pruned(p, m, two_x);
	}
	return result_datum(code, VARSIZE(code));
}

/* A row's code from the arguments, read and checked; the codebook prepared for the next rows where it may be. */
static Datum
encode_pq_reading_arguments(FunctionCallInfo fcinfo, const KVector *v)
{
	VectorList	columns = arg_vector_array(fcinfo, 1, "columns");
	VectorList	norms = arg_vector_array(fcinfo, 2, "norms");
	PQShape		shape = pq_shape(v, columns, norms, PG_GETARG_INT32(3));
	int			K = shape.centroids;
	bytea	   *code = new_bytea(shape.m);
	uint8	   *out = (uint8 *) VARDATA(code);
	const float **rows = palloc(sizeof(float *) * shape.sub);
	float	   *two_x = palloc(sizeof(float) * shape.sub);
	PQPrepared *prepared = pq_prepared(fcinfo, columns, norms, shape);

	for (int m = 0; m < shape.m; m++)
	{
		for (int k = 0; k < shape.sub; k++)
		{
			two_x[k] = 2.0f * v->x[m * shape.sub + k];
			rows[k] = columns.items[m * shape.sub + k]->x;
		}
		out[m] = (uint8) (prepared != NULL ? pq_nearest_pruned(prepared, m, two_x)
						  : pq_nearest(norms.items[m]->x, rows, two_x, shape.sub, K));
	}
	return result_datum(code, VARSIZE(code));
}

PG_FUNCTION_INFO_V1(kernel_encode_pq);
Datum
kernel_encode_pq(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	PQPrepared *again = pq_prepared_again(fcinfo);

	if (again != NULL)
		PG_RETURN_DATUM(encode_pq_prepared(again, v));
	PG_RETURN_DATUM(encode_pq_reading_arguments(fcinfo, v));
}

/*
 * --- linear projections: y_r = <v - centre, row_r> ---
 * As pgvector's `<#>` computes each inner product (the same function, called); where a difference v - centre
 * overflows float32 or an inner product is not finite, every y_r in float64, summed in order and saturated.
 */
static void
project_f64(const KVector *v, const KVector *centre, VectorList rows, KVector *out)
{
	for (int r = 0; r < rows.n; r++)
	{
		const float *w = rows.items[r]->x;
		double		s = 0;

		for (int i = 0; i < v->dim; i++)
		{
			double		t = ((double) v->x[i] - (centre ? (double) centre->x[i] : 0.0)) * (double) w[i];

			s = i == 0 ? t : s + t;
		}
		out->x[r] = (float) (s > KFLT_MAX ? KFLT_MAX : (s < -KFLT_MAX ? -KFLT_MAX : s));
	}
}

static bool
project_f32(const KVector *v, VectorList rows, KVector *out)
{
	for (int r = 0; r < rows.n; r++)
	{
		float		y = (float) -pgvector_call(PGV_NEGATIVE_INNER_PRODUCT, v, rows.items[r]);

		if (!isfinite(y))
			return false;
		out->x[r] = y;
	}
	return true;
}

static KVector *
projection_result(const KVector *v, VectorList rows)
{
	if (rows.n == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("projection_rows is empty")));
	for (int r = 0; r < rows.n; r++)
		check_same_dims(v->dim, rows.items[r]->dim);
	return new_vector(rows.n);
}

/* v - centre in float32, or NULL where an element overflows (pgvector's vector_sub would raise). */
static KVector *
difference_f32(const KVector *v, const KVector *centre)
{
	KVector    *d = palloc(KVECTOR_SIZE(v->dim));

	SET_VARSIZE(d, KVECTOR_SIZE(v->dim));
	d->dim = v->dim;
	d->unused = 0;
	for (int i = 0; i < v->dim; i++)
	{
		d->x[i] = v->x[i] - centre->x[i];
		if (isinf(d->x[i]))
			return NULL;
	}
	return d;
}

PG_FUNCTION_INFO_V1(kernel_project);
Datum
kernel_project(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	VectorList	rows = arg_vector_array(fcinfo, 1, "projection_rows");
	KVector    *out = projection_result(v, rows);

	if (!project_f32(v, rows, out))
		project_f64(v, NULL, rows, out);
	PG_RETURN_DATUM(vector_datum(out));
}

PG_FUNCTION_INFO_V1(kernel_project_centred);
Datum
kernel_project_centred(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	const KVector *centre = arg_vector(fcinfo, 1, "centre");
	VectorList	rows = arg_vector_array(fcinfo, 2, "projection_rows");
	KVector    *d;
	KVector    *out;

	check_same_dims(v->dim, centre->dim);
	out = projection_result(v, rows);
	d = difference_f32(v, centre);
	if (d == NULL || !project_f32(d, rows, out))
		project_f64(v, centre, rows, out);
	PG_RETURN_DATUM(vector_datum(out));
}

/*
 * --- RaBitQ's correction factors: |v - centre| and <sign(o)/sqrt(d), o/|o|> = |o|_1 / (sqrt(d) |o|) ---
 * with pgvector's vector_norm and l1_distance (against zeros), in float64 where those are not finite.
 */
static double
clamp_float(double x)
{
	return x > KFLT_MAX ? KFLT_MAX : x;
}

PG_FUNCTION_INFO_V1(kernel_rabitq_factors);
Datum
kernel_rabitq_factors(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	const KVector *centre = arg_vector(fcinfo, 1, "centre");
	const KVector *rotated = arg_vector(fcinfo, 2, "rotated");
	KVector    *out = new_vector(2);
	KVector    *d;

	check_same_dims(v->dim, centre->dim);
	d = difference_f32(v, centre);
	if (d != NULL)
	{
		double		norm = pgvector_call(PGV_NORM, d, NULL);
		double		rotated_norm = pgvector_call(PGV_NORM, rotated, NULL);
		double		overlap = 1;

		if (rotated_norm != 0)
		{
			KVector    *zeros = palloc0(KVECTOR_SIZE(rotated->dim));

			SET_VARSIZE(zeros, KVECTOR_SIZE(rotated->dim));
			zeros->dim = rotated->dim;
			overlap = float8_div(pgvector_call(PGV_L1_DISTANCE, rotated, zeros),
								 float8_mul(pg_sqrt((double) rotated->dim), rotated_norm));
		}
		out->x[0] = (float) norm;
		out->x[1] = (float) overlap;
	}
	if (d == NULL || !isfinite(out->x[0]) || !isfinite(out->x[1]))
	{
		double		norm = 0;
		double		squares = 0;
		double		l1 = 0;

		for (int i = 0; i < v->dim; i++)
		{
			double		t = (double) v->x[i] - (double) centre->x[i];

			norm = i == 0 ? t * t : norm + t * t;
		}
		for (int i = 0; i < rotated->dim; i++)
		{
			double		r = (double) rotated->x[i];

			squares = i == 0 ? r * r : squares + r * r;
			l1 = i == 0 ? fabs(r) : l1 + fabs(r);
		}
		out->x[0] = (float) clamp_float(sqrt(norm));
		out->x[1] = (float) (squares == 0 ? 1.0 : clamp_float(l1 / (sqrt((double) rotated->dim) * sqrt(squares))));
	}
	PG_RETURN_DATUM(vector_datum(out));
}
