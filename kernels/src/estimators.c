/*
 * Distance estimators: a query made once into a table (float8[]), then a distance from each compact code,
 * cheap enough for ORDER BY over many candidates.
 *
 * Table format (version 1), shared with the twins (sql/functions/estimators.sql):
 *   [0] tag: 1 a byte table, 2 int8 weights      [1] format version      [2] metric (1 l2, 2 ip, 3 cosine)
 *   [3] n: code bytes (byte tables) or dimensions (int8)
 *   [4..6] units u1..u3: the value of one integer step of each part
 *   [7..9] constants c0..c2 of the metric's formula
 *   [10] kind of byte table (1 pq, 2 bits, 3 rabitq)   [11] pq: centroids; bits, rabitq: code bits
 * then the entries: a byte table, 256 per code byte (entry [p][b]: what byte p holding b adds); int8
 * weights, three runs of n (w: query, u and v: data).
 *
 * Entries are integers (|e| <= 2^24 for byte tables, 2^20 for weights), so every sum of them is exact in
 * float64 in any order: the kernel adds with several accumulators, the twin in one, and the sums agree.
 * Each entry a kernel touches is checked to be such an integer.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

#include "catalog/pg_type.h"
#include "utils/memutils.h"

#define TABLE_VERSION 1
#define MAX_CODE_BITS 128000	/* 8 bits a dimension of pgvector's largest vector */

static const char *
kind_name(double tag, double kind)
{
	if (tag == TAG_INT8)
		return "sq8_query";
	return kind == KIND_PQ ? "pq_lut" : (kind == KIND_BITS ? "bits_lut" : "rabitq_lut");
}

QueryTable
query_table_of(const float8 *h, int total, int tag, int kind)
{
	QueryTable	table;
	long		expected;

	if (total < TABLE_HEADER || (h[0] != TAG_BYTES && h[0] != TAG_INT8))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the table is not one of pgembed's query tables (pgembed.pq_lut, bits_lut, rabitq_lut, sq8_query)")));
	if (h[1] != TABLE_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the table has format version %g; this pgembed_kernels reads version %d: make it again",
						h[1], TABLE_VERSION)));
	if (h[0] != tag || (tag == TAG_BYTES && h[10] != kind))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the table was made by pgembed.%s; this function takes one made by pgembed.%s",
						kind_name(h[0], h[10]), kind_name(tag, kind))));
	if (!(h[2] == METRIC_L2 || h[2] == METRIC_IP || h[2] == METRIC_COSINE) || !(h[3] >= 1 && h[3] <= (tag == TAG_INT8 ? KVECTOR_MAX_DIM : 1000000)) ||
		h[3] != rint(h[3]))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("the table's header is not valid")));
	if (tag == TAG_BYTES && (h[11] != rint(h[11]) ||
							 (kind == KIND_PQ ? !(h[11] >= 1 && h[11] <= 256) : h[3] != floor((h[11] + 7) / 8))))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("the table's header is not valid")));
	table.header = h;
	table.entries = h + TABLE_HEADER;
	table.n = (int) h[3];
	table.metric = (int) h[2];
	expected = TABLE_HEADER + (tag == TAG_BYTES ? 256L : 3L) * table.n;
	if (total != expected)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the table has %d entries; its header says %ld", total, expected)));
	return table;
}

static QueryTable
arg_table(FunctionCallInfo fcinfo, int argno, int tag, int kind)
{
	int			total;
	const float8 *h = arg_float8_array(fcinfo, argno, "table", &total);

	return query_table_of(h, total, tag, kind);
}

/* Entry i, checked to be an integer of at most `top` (raises otherwise). */
static inline double
table_entry(const float8 *entries, long i, double top)
{
	double		e = entries[i];

	if (!(fabs(e) <= top) || e != rint(e))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the table's entry %ld is not an integer of at most %.0f: not a table pgembed made",
						i + 1 + TABLE_HEADER, top)));
	return e;
}

/* greatest(x, 0) as PostgreSQL evaluates it: the first argument unless a later one compares greater. */
static inline double
greatest_zero(double x)
{
	return float8_cmp_pg(0.0, x) > 0 ? 0.0 : x;
}

/* Sum of the table's entries for these code bytes. */
double
byte_sum(const QueryTable *table, const uint8 *bytes, int nbytes, int centroids)
{
	/* -0.0, IEEE's additive identity: a sum of -0.0 terms stays -0.0, as PostgreSQL's sum() leaves it */
	double		acc[4] = {-0.0, -0.0, -0.0, -0.0};

	for (int p = 0; p < nbytes; p++)
	{
		if (bytes[p] >= centroids)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("code byte %d is %d: the codebook has %d centroids", p + 1, bytes[p], centroids)));
		acc[p & 3] += table_entry(table->entries, (long) p * 256 + bytes[p], BYTE_TOP);
	}
	return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

/* A PQ distance from its table's sum for the code: u1 sum, then the metric's formula. */
double
pq_value(const QueryTable *table, double sum)
{
	double		t = float8_mul(table->header[4], sum);

	if (table->metric == METRIC_L2)
		return pg_sqrt(greatest_zero(t));
	if (table->metric == METRIC_COSINE)
		return float8_pl(table->header[7], t);
	return t;
}

double
bits_value(const QueryTable *table, double sum)
{
	return float8_mul(table->header[4], sum);
}

PG_FUNCTION_INFO_V1(kernel_pq_distance);
Datum
kernel_pq_distance(PG_FUNCTION_ARGS)
{
	int			len;
	const uint8 *code = arg_bytea(fcinfo, 0, &len);
	QueryTable	table = arg_table(fcinfo, 1, TAG_BYTES, KIND_PQ);

	check_code_bytes(&table, len);
	PG_RETURN_FLOAT8(pq_value(&table, byte_sum(&table, code, len, (int) table.header[11])));
}

void
check_bits_code(const QueryTable *table, const VarBit *code)
{
	if (VARBITLEN(code) != table->header[11])
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the code has %d bits; the table was made for %.0f", VARBITLEN(code), table->header[11])));
}

static const uint8 *
code_bits(FunctionCallInfo fcinfo, int argno, const QueryTable *table)
{
	const VarBit *code = arg_varbit(fcinfo, argno);

	check_bits_code(table, code);
	return VARBITS(code);
}

PG_FUNCTION_INFO_V1(kernel_bits_distance);
Datum
kernel_bits_distance(PG_FUNCTION_ARGS)
{
	QueryTable	table = arg_table(fcinfo, 1, TAG_BYTES, KIND_BITS);
	const uint8 *bytes = code_bits(fcinfo, 0, &table);

	PG_RETURN_FLOAT8(bits_value(&table, byte_sum(&table, bytes, table.n, 256)));
}

PG_FUNCTION_INFO_V1(kernel_rabitq_distance);
Datum
kernel_rabitq_distance(PG_FUNCTION_ARGS)
{
	QueryTable	table = arg_table(fcinfo, 2, TAG_BYTES, KIND_RABITQ);
	const uint8 *bytes = code_bits(fcinfo, 0, &table);
	const KVector *factors = arg_vector(fcinfo, 1, "factors");
	const double *h = table.header;
	double		f0;
	double		f1;
	double		t;

	if (factors->dim != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("factors has %d dimensions; RaBitQ's factors are 2", factors->dim)));
	f0 = factors->x[0];
	f1 = factors->x[1];
	t = float8_mul(h[4], byte_sum(&table, bytes, table.n, 256));
	if (table.metric == METRIC_L2)	/* sqrt(greatest((f0 * f0 + c1) - 2 * f0 * t / f1, 0)) */
		PG_RETURN_FLOAT8(pg_sqrt(greatest_zero(float8_mi(float8_pl(float8_mul(f0, f0), h[8]),
														 float8_div(float8_mul(float8_mul(2, f0), t), f1)))));
	{
		double		estimate = float8_pl(h[7], float8_div(float8_mul(f0, t), f1));	/* c0 + f0 * t / f1 */

		if (table.metric == METRIC_COSINE)
			PG_RETURN_FLOAT8(float8_mi(1, float8_div(estimate, h[9])));
		PG_RETURN_FLOAT8(-estimate);
	}
}

/* T1 = sum w L, T2 = sum u L (cosine), T3 = sum v L^2 (l2, cosine) for the code L, every weight checked. */
void
sq8_sums(const QueryTable *table, const uint8 *code, double *T1, double *T2, double *T3)
{
	int			n = table->n;
	double		t1[4] = {-0.0, -0.0, -0.0, -0.0};
	double		t2[4] = {-0.0, -0.0, -0.0, -0.0};
	double		t3[4] = {-0.0, -0.0, -0.0, -0.0};

	for (int i = 0; i < n; i++)
		t1[i & 3] += table_entry(table->entries, i, WEIGHT_TOP) * code[i];
	if (table->metric == METRIC_COSINE)
		for (int i = 0; i < n; i++)
			t2[i & 3] += table_entry(table->entries, (long) n + i, WEIGHT_TOP) * code[i];
	if (table->metric != METRIC_IP)
		for (int i = 0; i < n; i++)
			t3[i & 3] += table_entry(table->entries, 2L * n + i, WEIGHT_TOP) * ((double) code[i] * code[i]);
	*T1 = (t1[0] + t1[1]) + (t1[2] + t1[3]);
	*T2 = (t2[0] + t2[1]) + (t2[2] + t2[3]);
	*T3 = (t3[0] + t3[1]) + (t3[2] + t3[3]);
}

/* An int8 distance from its three sums (sq8_query's formulas). */
double
sq8_value(const QueryTable *table, double T1, double T2, double T3)
{
	const double *h = table->header;
	double		first = float8_pl(h[7], float8_mul(h[4], T1));	/* c0 + u1 T1 */
	double		squared_norm;

	if (table->metric == METRIC_IP)
		return -first;
	if (table->metric == METRIC_L2)
		return pg_sqrt(greatest_zero(float8_pl(first, float8_mul(h[6], T3))));
	squared_norm = float8_pl(float8_pl(h[8], float8_mul(h[5], T2)), float8_mul(h[6], T3));
	/* CASE WHEN squared_norm > 0 (NaN counts as greater) THEN 1 - first / (c2 sqrt(..)) ELSE NaN */
	if (float8_cmp_pg(squared_norm, 0) > 0)
		return float8_mi(1, float8_div(first, float8_mul(h[9], pg_sqrt(squared_norm))));
	return NAN;
}

/* A bytea code (pq, int8) of the length its table was made for: one byte a sub-space, or a dimension. */
void
check_code_bytes(const QueryTable *table, int len)
{
	if (len != table->n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the code has %d bytes; the table was made for %d%s", len, table->n,
						table->header[0] == TAG_INT8 ? " dimensions" : "")));
}

PG_FUNCTION_INFO_V1(kernel_sq8_distance);
Datum
kernel_sq8_distance(PG_FUNCTION_ARGS)
{
	int			len;
	const uint8 *code = arg_bytea(fcinfo, 0, &len);
	QueryTable	table = arg_table(fcinfo, 1, TAG_INT8, 0);
	double		T1;
	double		T2;
	double		T3;

	check_code_bytes(&table, len);
	sq8_sums(&table, code, &T1, &T2, &T3);
	PG_RETURN_FLOAT8(sq8_value(&table, T1, T2, T3));
}

/* --- the tables' builders --- */

/* Entries scaled so the largest is `top`, rounded half to even; returns the value of one step. */
static double
quantize(double *e, long n, double top)
{
	double		largest = 0;
	double		scale;

	for (long i = 0; i < n; i++)
		if (fabs(e[i]) > largest)
			largest = fabs(e[i]);
	scale = largest > 0 ? top / largest : 1;
	for (long i = 0; i < n; i++)
		e[i] = rint(e[i] * scale);
	return largest > 0 ? largest / top : 1;
}

static double *
new_table(long entries, int tag, int metric, int n, int kind, double aux, ArrayType **array)
{
	long		total = TABLE_HEADER + entries;
	Size		size;
	double	   *h;

	if (total > MaxAllocSize / sizeof(float8) / 2)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("the table would be too large")));
	size = ARR_OVERHEAD_NONULLS(1) + sizeof(float8) * total;
	*array = result_alloc(size);
	SET_VARSIZE(*array, size);
	(*array)->ndim = 1;
	(*array)->dataoffset = 0;
	(*array)->elemtype = FLOAT8OID;
	ARR_DIMS(*array)[0] = (int) total;
	ARR_LBOUND(*array)[0] = 1;
	h = (double *) ARR_DATA_PTR(*array);
	h[0] = tag;
	h[1] = TABLE_VERSION;
	h[2] = metric;
	h[3] = n;
	h[10] = kind;
	h[11] = aux;
	return h;
}

static Datum
table_datum(ArrayType *array)
{
	return result_datum(array, VARSIZE(array));
}

static double
query_norm(const KVector *q)
{
	double		s = 0;

	for (int i = 0; i < q->dim; i++)
		s = i == 0 ? (double) q->x[i] * q->x[i] : s + (double) q->x[i] * q->x[i];
	s = sqrt(s);
	if (s == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query is all zeros: cosine distance is undefined")));
	return s;
}

/*
 * pq_lut: entry [m][j] is, in float64 summed over the sub-space's coordinates in order, |q_m - c_mj|^2 (l2),
 * -<q_m, c_mj> (ip) or -<q_m / |q|, c_mj> (cosine, which assumes unit-length vectors: distance 1 + sum).
 */
PG_FUNCTION_INFO_V1(kernel_pq_lut);
Datum
kernel_pq_lut(PG_FUNCTION_ARGS)
{
	const KVector *q = arg_vector(fcinfo, 0, "query");
	VectorList	columns = arg_vector_array(fcinfo, 1, "columns");
	VectorList	norms = arg_vector_array(fcinfo, 2, "norms");
	int			metric = arg_metric(fcinfo, 4);
	int			sub;
	ArrayType  *array;
	double	   *h;
	double	   *e;
	double		nq = metric == METRIC_COSINE ? query_norm(q) : 1;
	int			m;
	int			K;

	{
		PQShape		shape = pq_shape(q, columns, norms, PG_GETARG_INT32(3));

		m = shape.m;
		K = shape.centroids;
		sub = shape.sub;
	}
	h = new_table(256L * m, TAG_BYTES, metric, m, KIND_PQ, K, &array);
	e = h + TABLE_HEADER;
	for (int s = 0; s < m; s++)
		for (int j = 0; j < K; j++)
		{
			double		acc = 0;

			for (int k = 0; k < sub; k++)
			{
				double		x = (double) q->x[s * sub + k];
				double		c = (double) columns.items[s * sub + k]->x[j];
				double		t;

				if (metric == METRIC_L2)
					t = (x - c) * (x - c);
				else if (metric == METRIC_IP)
					t = x * c;
				else
					t = (x / nq) * c;
				acc = k == 0 ? t : acc + t;
			}
			e[(long) s * 256 + j] = metric == METRIC_L2 ? acc : -acc;
		}
	h[4] = quantize(e, 256L * m, BYTE_TOP);
	h[7] = metric == METRIC_COSINE ? 1 : 0;
	PG_RETURN_DATUM(table_datum(array));
}

/* Entry [p][b] = sum over byte p's bits t (most significant first) of +w or -w as bit t of b is set. */
static void
signed_byte_entries(double *e, const double *w, long nbits, int nbytes, bool negate)
{
	for (int p = 0; p < nbytes; p++)
		for (int b = 0; b < 256; b++)
		{
			double		acc = 0;

			for (int t = 0; t < 8 && (long) p * 8 + t < nbits; t++)
			{
				double		term = ((b >> (7 - t)) & 1) ? w[p * 8 + t] : -w[p * 8 + t];

				acc = t == 0 ? term : acc + term;
			}
			e[(long) p * 256 + b] = negate ? -acc : acc;
		}
}

/*
 * bits_lut: for codes of sign bits or thermometer levels (bit p of a code is about dimension p mod d of the
 * query, level-major): the asymmetric estimate -sum_p q_(p mod d) * (bit p ? 1 : -1), which ranks by the
 * estimated inner product with the query kept in float.
 */
PG_FUNCTION_INFO_V1(kernel_bits_lut);
Datum
kernel_bits_lut(PG_FUNCTION_ARGS)
{
	const KVector *q = arg_vector(fcinfo, 0, "query");
	int32		nbits = PG_GETARG_INT32(1);
	int			metric = arg_metric(fcinfo, 2);
	int			nbytes;
	double	   *w;
	ArrayType  *array;
	double	   *h;

	if (nbits < 1 || nbits > MAX_CODE_BITS || nbits % q->dim != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nbits must be a positive multiple of the query's %d dimensions, at most %d, got %d",
						q->dim, MAX_CODE_BITS, nbits)));
	nbytes = (nbits + 7) / 8;
	w = palloc(sizeof(double) * nbytes * 8);
	for (long p = 0; p < nbits; p++)
		w[p] = q->x[p % q->dim];
	h = new_table(256L * nbytes, TAG_BYTES, metric, nbytes, KIND_BITS, nbits, &array);
	signed_byte_entries(h + TABLE_HEADER, w, nbits, nbytes, true);
	h[4] = quantize(h + TABLE_HEADER, 256L * nbytes, BYTE_TOP);
	PG_RETURN_DATUM(table_datum(array));
}

/*
 * rabitq_lut: `rotated` is R (query - centre), as pgembed.project() computes it. The entries sum to
 * <sign(o)/sqrt(d), R (q - c)>; c0 = <c, q>, c1 = |q - c|^2, c2 = |q|.
 */
PG_FUNCTION_INFO_V1(kernel_rabitq_lut);
Datum
kernel_rabitq_lut(PG_FUNCTION_ARGS)
{
	const KVector *q = arg_vector(fcinfo, 0, "query");
	const KVector *centre = arg_vector(fcinfo, 1, "centre");
	const KVector *rotated = arg_vector(fcinfo, 2, "rotated");
	int			metric = arg_metric(fcinfo, 3);
	int			nbits = rotated->dim;
	int			nbytes = (nbits + 7) / 8;
	double	   *w = palloc(sizeof(double) * nbytes * 8);
	ArrayType  *array;
	double	   *h;
	double		dot = 0;
	double		gap = 0;

	check_same_dims(q->dim, centre->dim);
	for (int p = 0; p < nbits; p++)
		w[p] = (double) rotated->x[p] / sqrt((double) nbits);
	h = new_table(256L * nbytes, TAG_BYTES, metric, nbytes, KIND_RABITQ, nbits, &array);
	signed_byte_entries(h + TABLE_HEADER, w, nbits, nbytes, false);
	h[4] = quantize(h + TABLE_HEADER, 256L * nbytes, BYTE_TOP);
	for (int i = 0; i < q->dim; i++)
	{
		double		x = (double) q->x[i];
		double		c = (double) centre->x[i];

		dot = i == 0 ? c * x : dot + c * x;
		gap = i == 0 ? (x - c) * (x - c) : gap + (x - c) * (x - c);
	}
	h[7] = dot;
	h[8] = gap;
	h[9] = metric == METRIC_COSINE ? query_norm(q) : 0;
	PG_RETURN_DATUM(table_datum(array));
}

/*
 * sq8_query: with x^ = lo + step * L the decoded vector, T1 = sum w L, T2 = sum u L, T3 = sum v L^2:
 *   ip:     -<q, x^> = -(c0 + u1 T1),          w = q step, c0 = <q, lo>
 *   l2:     |q - x^|^2 = (c0 + u1 T1) + u3 T3,  w = -2 (q - lo) step, v = step^2, c0 = |q - lo|^2
 *   cosine: 1 - (c0 + u1 T1) / (c2 sqrt((c1 + u2 T2) + u3 T3)),  w = q step, u = 2 lo step, v = step^2,
 *           c0 = <q, lo>, c1 = |lo|^2, c2 = |q|
 */
PG_FUNCTION_INFO_V1(kernel_sq8_query);
Datum
kernel_sq8_query(PG_FUNCTION_ARGS)
{
	const KVector *q = arg_vector(fcinfo, 0, "query");
	const KVector *lo = arg_vector(fcinfo, 1, "lo");
	const KVector *step = arg_vector(fcinfo, 2, "step");
	int			metric = arg_metric(fcinfo, 3);
	int			n = q->dim;
	ArrayType  *array;
	double	   *h;
	double	   *w;
	double	   *u;
	double	   *v;
	double		c0 = 0;
	double		c1 = 0;

	check_same_dims(n, lo->dim);
	check_same_dims(n, step->dim);
	h = new_table(3L * n, TAG_INT8, metric, n, 0, 0, &array);
	w = h + TABLE_HEADER;
	u = w + n;
	v = u + n;
	for (int i = 0; i < n; i++)
	{
		double		x = (double) q->x[i];
		double		l = (double) lo->x[i];
		double		s = (double) step->x[i];
		double		a = x - l;

		if (metric == METRIC_L2)
		{
			w[i] = (-2 * a) * s;
			v[i] = s * s;
			c0 = i == 0 ? a * a : c0 + a * a;
		}
		else
		{
			w[i] = x * s;
			c0 = i == 0 ? x * l : c0 + x * l;
			if (metric == METRIC_COSINE)
			{
				u[i] = (2 * l) * s;
				v[i] = s * s;
				c1 = i == 0 ? l * l : c1 + l * l;
			}
		}
	}
	h[4] = quantize(w, n, WEIGHT_TOP);
	h[5] = quantize(u, n, WEIGHT_TOP);
	h[6] = quantize(v, n, WEIGHT_TOP);
	h[7] = c0;
	h[8] = c1;
	h[9] = metric == METRIC_COSINE ? query_norm(q) : 0;
	PG_RETURN_DATUM(table_datum(array));
}
