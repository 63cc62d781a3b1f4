/*
 * IVF partitioning: the cluster of a vector, the index (from 0) of its nearest centroid.
 *
 * encode_ivf(v, centroids) is the twin's `ORDER BY v <-> c, i LIMIT 1`: the least pgvector l2_distance, the
 * least index among equal distances. pgvector sums the squares in its compiler's order, so the kernel never
 * decides by a sum of its own. It computes every squared distance approximately (AVX2 where the CPU has it),
 * and a bound on the rounding of both sums, ours and pgvector's, keeps the centroids that may still be the
 * nearest; only those are measured with pgvector's l2_distance (about one a row on real data, counted by the
 * DEBUG2 message). So the index is the twin's for every input.
 *
 * The bound. S = sum_i (v_i - c_i)^2 is a sum of non-negative terms, so any float32 evaluation of it, in any
 * order, fused or not, is within g S + e of S: each difference, square and partial sum rounds with a relative
 * error of at most u = 2^-24, or with an absolute one of at most 2^-150 where a square or a fused sum is
 * subnormal (a subnormal difference or sum is exact), which gives g = (d + 2) u / (1 - (d + 2) u) and
 * e = d 2^-150. Taking d + 3 and 2^-149 leaves room for the rounding of the bounds themselves (in float8).
 * Our value A then puts S in [(A - e) / (1 + g), (A + e) / (1 - g)], and pgvector's in
 * [L, U] = [(1 - g)(A - e) / (1 + g) - e, (1 + g)(A + e) / (1 - g) + e]. A centroid whose L exceeds the least U
 * cannot be the nearest. Where the least A is near float32's overflow (above 2^120), or not finite, every
 * centroid is measured by pgvector.
 *
 * Centroids that are a constant of the expression are kept once, and where the CPU has F16C and every
 * coordinate is within half precision's range, also as halves: half the bytes to stream for every row. A is
 * then the squared distance to the rounded centroid c', and the triangle inequality moves the bounds by
 * r = |c - c'| (computed when kept, in float8, rounded up): |v - c| lies in [max(0, a - r), b + r], where
 * [a, b] = [sqrt((A - e) / (1 + g)), sqrt((A + e) / (1 - g))] holds |v - c'|.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

#include "utils/memutils.h"

#define IVF_LARGE 1.329227995784916e36	/* 2^120 */

/* A centroid list made once for an expression whose centroids are a constant (a trigger's, a backfill's). */
typedef struct IVFPrepared
{
	Datum		centroids_datum;	/* the constant argument it was made from */
	VectorList	centroids;		/* copies in the expression's memory */
	int			dim;
	uint16	   *halves;			/* the centroids rounded to half precision, back to back, or NULL */
	double	   *rounding;		/* per centroid, |c - c'| rounded up */
	double		largest_rounding;	/* of them all */
	float	   *approximate;	/* a squared distance per centroid, for the row at hand */
	int		   *candidates;
} IVFPrepared;

static float
squared_distance_c(const float *v, const float *c, int dim)
{
	float		s = 0;

	for (int i = 0; i < dim; i++)
	{
		float		t = v[i] - c[i];

		s += t * t;
	}
	return s;
}

static void
squared_distances_c(const float *v, VectorList centroids, int dim, float *out)
{
	for (int j = 0; j < centroids.n; j++)
		out[j] = squared_distance_c(v, centroids.items[j]->x, dim);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(PGEMBED_SANITIZE)
#include <immintrin.h>
#define HAVE_AVX2_PARTITION 1

__attribute__((target("avx2,fma")))
static float
horizontal_sum(__m256 x)
{
	__m128		s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
	return _mm_cvtss_f32(s);
}

/* Four centroids at a time, so that four chains of fused multiply-adds run side by side. */
__attribute__((target("avx2,fma")))
static void
squared_distances_avx2(const float *v, VectorList centroids, int dim, float *out)
{
	int			j = 0;

	for (; j + 4 <= centroids.n; j += 4)
	{
		const float *c0 = centroids.items[j]->x;
		const float *c1 = centroids.items[j + 1]->x;
		const float *c2 = centroids.items[j + 2]->x;
		const float *c3 = centroids.items[j + 3]->x;
		__m256		s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
		int			i = 0;

		for (; i + 8 <= dim; i += 8)
		{
			__m256		x = _mm256_loadu_ps(v + i);
			__m256		t0 = _mm256_sub_ps(x, _mm256_loadu_ps(c0 + i));
			__m256		t1 = _mm256_sub_ps(x, _mm256_loadu_ps(c1 + i));
			__m256		t2 = _mm256_sub_ps(x, _mm256_loadu_ps(c2 + i));
			__m256		t3 = _mm256_sub_ps(x, _mm256_loadu_ps(c3 + i));

			s0 = _mm256_fmadd_ps(t0, t0, s0);
			s1 = _mm256_fmadd_ps(t1, t1, s1);
			s2 = _mm256_fmadd_ps(t2, t2, s2);
			s3 = _mm256_fmadd_ps(t3, t3, s3);
		}
		out[j] = horizontal_sum(s0) + squared_distance_c(v + i, c0 + i, dim - i);
		out[j + 1] = horizontal_sum(s1) + squared_distance_c(v + i, c1 + i, dim - i);
		out[j + 2] = horizontal_sum(s2) + squared_distance_c(v + i, c2 + i, dim - i);
		out[j + 3] = horizontal_sum(s3) + squared_distance_c(v + i, c3 + i, dim - i);
	}
	for (; j < centroids.n; j++)
		out[j] = squared_distance_c(v, centroids.items[j]->x, dim);
}
#endif

static void
squared_distances(const float *v, VectorList centroids, int dim, float *out)
{
#ifdef HAVE_AVX2_PARTITION
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
	{
		squared_distances_avx2(v, centroids, dim, out);
		return;
	}
#endif
	squared_distances_c(v, centroids, dim, out);
}

/* Both sums' rounding: the factor g and the term e of the bound above, for d dimensions. */
typedef struct Rounding
{
	double		g;
	double		e;
} Rounding;

static Rounding
rounding_for(int dim)
{
	const double u = ldexp(1.0, -24);
	Rounding	r = {(dim + 3) * u / (1 - (dim + 3) * u), dim * ldexp(1.0, -149)};

	return r;
}

#ifdef HAVE_AVX2_PARTITION
__attribute__((target("avx2,fma,f16c")))
static float
squared_distance_half_tail(const float *v, const uint16 *c, int dim)
{
	float		s = 0;

	for (int i = 0; i < dim; i++)
	{
		float		t = v[i] - _cvtsh_ss(c[i]);

		s += t * t;
	}
	return s;
}

__attribute__((target("avx2,fma,f16c")))
static void
squared_distances_half(const float *v, const uint16 *halves, int n, int dim, float *out)
{
	int			j = 0;

	for (; j + 4 <= n; j += 4)
	{
		const uint16 *c0 = halves + (Size) j * dim;
		const uint16 *c1 = c0 + dim;
		const uint16 *c2 = c1 + dim;
		const uint16 *c3 = c2 + dim;
		__m256		s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
		int			i = 0;

		for (; i + 8 <= dim; i += 8)
		{
			__m256		x = _mm256_loadu_ps(v + i);
			__m256		t0 = _mm256_sub_ps(x, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (c0 + i))));
			__m256		t1 = _mm256_sub_ps(x, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (c1 + i))));
			__m256		t2 = _mm256_sub_ps(x, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (c2 + i))));
			__m256		t3 = _mm256_sub_ps(x, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (c3 + i))));

			s0 = _mm256_fmadd_ps(t0, t0, s0);
			s1 = _mm256_fmadd_ps(t1, t1, s1);
			s2 = _mm256_fmadd_ps(t2, t2, s2);
			s3 = _mm256_fmadd_ps(t3, t3, s3);
		}
		out[j] = horizontal_sum(s0) + squared_distance_half_tail(v + i, c0 + i, dim - i);
		out[j + 1] = horizontal_sum(s1) + squared_distance_half_tail(v + i, c1 + i, dim - i);
		out[j + 2] = horizontal_sum(s2) + squared_distance_half_tail(v + i, c2 + i, dim - i);
		out[j + 3] = horizontal_sum(s3) + squared_distance_half_tail(v + i, c3 + i, dim - i);
	}
	for (; j < n; j++)
		out[j] = squared_distance_half_tail(v, halves + (Size) j * dim, dim);
}

__attribute__((target("f16c")))
static float
half_value(uint16 h)
{
	return _cvtsh_ss(h);
}
#endif

/* The centroids measured by pgvector, in index order: the nearest of them by (distance, index). */
static int32
measured_nearest(const KVector *v, VectorList centroids, const int *candidates, int ncandidates)
{
	double		best = 0;
	int32		nearest = -1;

	for (int c = 0; c < ncandidates; c++)
	{
		double		d = pgvector_call(PGV_L2_DISTANCE, v, centroids.items[candidates[c]]);

		if (nearest < 0 || float8_lt_pg(d, best))
		{
			best = d;
			nearest = candidates[c];
		}
	}
	elog(DEBUG2, "encode_ivf: %d of %d centroids measured", ncandidates, centroids.n);
	return nearest;
}

#ifdef HAVE_AVX2_PARTITION
/* As nearest_centroid, from the centroids' halves and their rounding r (the bound above, moved by r). */
static int32
nearest_centroid_half(const KVector *v, const IVFPrepared *p)
{
	const int	n = p->centroids.n;
	const Rounding r = rounding_for(v->dim);
	float	   *a = p->approximate;
	int			ncandidates = 0;
	int			first = 0;
	double		upper;
	double		reach;

	squared_distances_half(v->x, p->halves, n, v->dim, a);
	for (int j = 1; j < n; j++)
		if (a[j] < a[first])
			first = j;
	if (!(a[first] <= IVF_LARGE))
	{
		for (int j = 0; j < n; j++)
			p->candidates[j] = j;
		return measured_nearest(v, p->centroids, p->candidates, n);
	}
	/* an upper bound on the least pgvector distance: the first centroid's U */
	upper = sqrt((a[first] + r.e) / (1 - r.g)) + p->rounding[first];
	upper = (1 + r.g) * upper * upper + r.e;
	/* L_j <= upper needs |v - c_j| <= reach, so a_j <= reach + r_j */
	reach = sqrt((upper + r.e) / (1 - r.g));
	for (int j = 0; j < n; j++)
	{
		double		bound = reach + p->largest_rounding;
		double		low;

		if ((double) a[j] > (1 + r.g) * bound * bound + r.e)
			continue;			/* a_j > reach + r_j for every r_j: never a candidate */
		low = sqrt(Max(0.0, (a[j] - r.e) / (1 + r.g))) - p->rounding[j];
		if (low <= reach || isnan(a[j]))
			p->candidates[ncandidates++] = j;
	}
	return measured_nearest(v, p->centroids, p->candidates, ncandidates);
}
#endif

/* The nearest centroid as the twin picks it: approximate distances, the bound, pgvector on what is left. */
static int32
nearest_centroid(const KVector *v, VectorList centroids, float *approximate, int *candidates)
{
	const int	n = centroids.n;
	const Rounding r = rounding_for(v->dim);
	double		least = INFINITY;
	double		threshold = INFINITY;
	int			ncandidates = 0;

	squared_distances(v->x, centroids, v->dim, approximate);
	for (int j = 0; j < n; j++)
		if (approximate[j] < least)
			least = approximate[j];
	if (least <= IVF_LARGE)
	{
		double		least_upper = (1 + r.g) * (least + r.e) / (1 - r.g) + r.e;

		/* L_j <= least_upper, solved for A_j */
		threshold = (least_upper + r.e) * (1 + r.g) / (1 - r.g) + r.e;
	}
	for (int j = 0; j < n; j++)
		if (!(approximate[j] > threshold))	/* NaN stays a candidate */
			candidates[ncandidates++] = j;
	return measured_nearest(v, centroids, candidates, ncandidates);
}

static void
check_centroids(const KVector *v, VectorList centroids)
{
	if (centroids.n == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("centroids is empty")));
	for (int j = 0; j < centroids.n; j++)
		check_same_dims(v->dim, centroids.items[j]->dim);
}

/* The halves of the kept centroids and their rounding, where the CPU and the values allow (else halves NULL). */
static void
keep_halves(IVFPrepared *p)
{
#ifdef HAVE_AVX2_PARTITION
	const Size	total = (Size) p->centroids.n * p->dim;

	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !__builtin_cpu_supports("f16c"))
		return;
	for (int j = 0; j < p->centroids.n; j++)
		for (int i = 0; i < p->dim; i++)
			if (!(fabsf(p->centroids.items[j]->x[i]) <= 65504.0f))
				return;
	p->halves = palloc(sizeof(uint16) * total);
	p->rounding = palloc(sizeof(double) * p->centroids.n);
	for (int j = 0; j < p->centroids.n; j++)
	{
		double		s = 0;
		double		norm = 0;

		for (int i = 0; i < p->dim; i++)
		{
			float		x = p->centroids.items[j]->x[i];
			uint16		h = float_to_half(x);
			double		t = (double) x - (double) half_value(h);

			p->halves[(Size) j * p->dim + i] = h;
			s += t * t;
			norm += (double) x * x;
		}
		/* float8's own rounding of this sum and root is below d 2^-53 of it (2e-12 at 16,000 dimensions) */
		p->rounding[j] = sqrt(s) * (1 + 1e-11) + 1e-300;
		p->largest_rounding = Max(p->largest_rounding, p->rounding[j]);
		if (p->rounding[j] > 1e-3 * sqrt(norm))
		{
			/* below half precision's range: the halves would prune nothing; the floats it is */
			pfree(p->halves);
			pfree(p->rounding);
			p->halves = NULL;
			p->rounding = NULL;
			return;
		}
	}
#else
	(void) p;
#endif
}

/* The centroids kept for this constant argument, made at the first call of the expression, or NULL. */
static IVFPrepared *
ivf_prepared(FunctionCallInfo fcinfo, const KVector *v)
{
	IVFPrepared *p = (IVFPrepared *) fcinfo->flinfo->fn_extra;
	MemoryContext old;
	VectorList	centroids;

	if (p != NULL)
		return p->centroids_datum == PG_GETARG_DATUM(1) ? p : NULL;
	if (!arg_is_constant(fcinfo, 1))
		return NULL;
	centroids = arg_vector_array(fcinfo, 1, "centroids");
	check_centroids(v, centroids);
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	p = palloc0(sizeof(IVFPrepared));
	p->centroids_datum = PG_GETARG_DATUM(1);
	p->dim = v->dim;
	p->centroids.n = centroids.n;
	p->centroids.items = palloc(sizeof(KVector *) * centroids.n);
	for (int j = 0; j < centroids.n; j++)
	{
		KVector    *copy = palloc(KVECTOR_SIZE(v->dim));

		memcpy(copy, centroids.items[j], KVECTOR_SIZE(v->dim));
		p->centroids.items[j] = copy;
	}
	p->approximate = palloc(sizeof(float) * centroids.n);
	p->candidates = palloc(sizeof(int) * centroids.n);
	keep_halves(p);
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = p;
	return p;
}

PG_FUNCTION_INFO_V1(kernel_encode_ivf);
Datum
kernel_encode_ivf(PG_FUNCTION_ARGS)
{
	const KVector *v = arg_vector(fcinfo, 0, "v");
	IVFPrepared *p = ivf_prepared(fcinfo, v);
	VectorList	centroids;

	if (p != NULL)
	{
		/* the centroids were checked when they were kept; only the row's dimension can differ */
		check_same_dims(v->dim, p->dim);
#ifdef HAVE_AVX2_PARTITION
		if (p->halves != NULL)
			PG_RETURN_INT32(nearest_centroid_half(v, p));
#endif
		PG_RETURN_INT32(nearest_centroid(v, p->centroids, p->approximate, p->candidates));
	}
	centroids = arg_vector_array(fcinfo, 1, "centroids");
	check_centroids(v, centroids);
	PG_RETURN_INT32(nearest_centroid(v, centroids, palloc(sizeof(float) * centroids.n),
									 palloc(sizeof(int) * centroids.n)));
}
