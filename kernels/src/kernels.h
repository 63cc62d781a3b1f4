/*
 * pgembed_kernels: the hot loops of pgembed's codecs, estimators and batch scans, as SQL functions.
 *
 * Every function here has a twin in SQL (pgembed's sql/functions/, schema pgembed_twins) that returns the
 * same result for every input: the same bits, bytes and floats. Arithmetic is therefore written out in the
 * order the twin does it (no FMA contraction, no reassociation: -ffp-contract=off, no -ffast-math), and
 * where the twin leans on a reduction of pgvector's (whose order depends on how pgvector was compiled), the
 * kernel calls that same pgvector function (pgvector.c).
 *
 * No input may crash the server: every argument is checked here (sizes, dimensions, NULL elements, array
 * shapes, parameter formats), and anything wrong raises an ERROR that names the argument.
 */
#ifndef PGEMBED_KERNELS_H
#define PGEMBED_KERNELS_H

#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/float.h"
#include "utils/array.h"
#include "utils/varbit.h"

/* pgvector's on-disk layouts (its vector.h and halfvec.h), unchanged since pgvector 0.7. */
typedef struct KVector
{
	int32		vl_len_;
	int16		dim;
	int16		unused;
	float		x[FLEXIBLE_ARRAY_MEMBER];
} KVector;

typedef struct KHalfVector
{
	int32		vl_len_;
	int16		dim;
	int16		unused;
	uint16		x[FLEXIBLE_ARRAY_MEMBER];
} KHalfVector;

#define KVECTOR_MAX_DIM 16000
#define KVECTOR_SIZE(d) (offsetof(KVector, x) + sizeof(float) * (Size) (d))
#define KHALFVEC_SIZE(d) (offsetof(KHalfVector, x) + sizeof(uint16) * (Size) (d))

/* The largest finite float, and the float8 bounds of float32 rounding (2^128 - 2^103, 2^-150). */
#define KFLT_MAX 3.4028234663852886e38

/* A vector[] argument, flattened in storage order (as FOREACH and unnest see it). */
typedef struct VectorList
{
	int			n;
	const KVector **items;
} VectorList;

/* Arguments, checked: each raises an ERROR naming `name` when the value is not what the function takes. */
extern const KVector *arg_vector(FunctionCallInfo fcinfo, int argno, const char *name);
extern VectorList arg_vector_array(FunctionCallInfo fcinfo, int argno, const char *name);
extern const int32 *arg_int4_array(FunctionCallInfo fcinfo, int argno, const char *name, int *n);
extern const float8 *arg_float8_array(FunctionCallInfo fcinfo, int argno, const char *name, int *n);
extern const uint8 *arg_bytea(FunctionCallInfo fcinfo, int argno, int *len);
extern const VarBit *arg_varbit(FunctionCallInfo fcinfo, int argno);
extern int	arg_metric(FunctionCallInfo fcinfo, int argno);
/* Whether argument argno of the calling expression is a constant (the same datum at every call of it). */
extern bool arg_is_constant(FunctionCallInfo fcinfo, int argno);

extern void check_same_dims(int a, int b);
extern void check_result_dims(long n, const char *what);

/* Metrics, as pgembed's Metric vocabulary names them; the codes are the estimators' table format. */
#define METRIC_L2 1
#define METRIC_IP 2
#define METRIC_COSINE 3

/*
 * Results. result_alloc() returns zeroed memory of exactly `size` bytes; result_datum() turns it into the
 * function's return value. In a sanitizer build (PGEMBED_SANITIZE) results and argument copies live in
 * malloc'd blocks of their exact size, so that AddressSanitizer sees every read or write past their end.
 */
extern void *result_alloc(Size size);
extern Datum result_datum(void *result, Size size);
extern KVector *new_vector(int dim);
extern Datum vector_datum(KVector *v);

/* float32 -> IEEE half, rounding to nearest even (as pgvector's vector -> halfvec cast does). */
extern uint16 float_to_half(float f);

/*
 * PostgreSQL's float8 arithmetic where a twin does it in SQL: float8_pl, _mi, _mul and _div of utils/float.h
 * raise where SQL raises (overflow, underflow, division by zero); pg_sqrt is float8's sqrt().
 */
static inline double
pg_sqrt(double x)
{
	double		r;

	if (x < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_ARGUMENT_FOR_POWER_FUNCTION),
				 errmsg("cannot take square root of a negative number")));
	r = sqrt(x);
	if (isinf(r) && !isinf(x))
		float_overflow_error();
	if (r == 0.0 && x != 0.0)
		float_underflow_error();
	return r;
}

/* PostgreSQL's float8 ordering: NaN after everything, equal to itself. */
static inline bool
float8_lt_pg(double a, double b)
{
	if (isnan(a))
		return false;
	if (isnan(b))
		return true;
	return a < b;
}

static inline int
float8_cmp_pg(double a, double b)
{
	if (isnan(a))
		return isnan(b) ? 0 : 1;
	if (isnan(b))
		return -1;
	return (a > b) - (a < b);
}

/* A product quantizer's shape, from an encoder's arguments (checked: the errors name what disagrees). */
typedef struct PQShape
{
	int			m;
	int			sub;
	int			centroids;
} PQShape;

extern PQShape pq_shape(const KVector *v, VectorList columns, VectorList norms, int32 sub_dim);

/* pgvector's own functions, called where a twin relies on their arithmetic (pgvector.c). */
typedef enum PgvectorFunction
{
	PGV_NEGATIVE_INNER_PRODUCT,
	PGV_L2_DISTANCE,
	PGV_COSINE_DISTANCE,
	PGV_NORM,
	PGV_L1_DISTANCE,
	PGV_FUNCTION_COUNT
} PgvectorFunction;

extern double pgvector_call(PgvectorFunction f, const KVector *a, const KVector *b);
extern FmgrInfo *pgvector_function(PgvectorFunction f);

/*
 * The estimators' query tables (estimators.c; the format is described there and in the twins'
 * sql/functions/estimators.sql): parsed and checked, and the arithmetic each estimator does with one.
 */
#define TABLE_HEADER 12
#define TAG_BYTES 1
#define TAG_INT8 2
#define KIND_PQ 1
#define KIND_BITS 2
#define KIND_RABITQ 3
#define BYTE_TOP 16777215.0		/* 2^24 - 1 */
#define WEIGHT_TOP 1048575.0	/* 2^20 - 1 */

typedef struct QueryTable
{
	const float8 *header;
	const float8 *entries;
	int			n;				/* code bytes (byte tables) or dimensions (int8) */
	int			metric;
} QueryTable;

/* `total` float8s at h as a table of this tag (and kind, for byte tables); raises when it is not one. */
extern QueryTable query_table_of(const float8 *h, int total, int tag, int kind);
/* The entries for these code bytes, summed (every byte checked below `centroids`, every entry checked). */
extern double byte_sum(const QueryTable *table, const uint8 *bytes, int nbytes, int centroids);
extern double pq_value(const QueryTable *table, double sum);
extern double bits_value(const QueryTable *table, double sum);
extern void sq8_sums(const QueryTable *table, const uint8 *code, double *T1, double *T2, double *T3);
extern double sq8_value(const QueryTable *table, double T1, double T2, double T3);
/* A code of the length its table was made for, or an ERROR saying what it has. */
extern void check_code_bytes(const QueryTable *table, int len);
extern void check_bits_code(const QueryTable *table, const VarBit *code);

/* The multi-query scans' top-k heaps (heaps.c): one per query, of (distance, key), worst first. */
typedef struct Candidate
{
	double		distance;
	Datum		key;
} Candidate;

typedef struct KeyHeaps
{
	int			nq;
	int			k;
	Candidate  *heaps;			/* nq heaps of up to k */
	int		   *sizes;
	MemoryContext context;		/* where entering keys are copied: the aggregate's */
	int16		key_len;
	bool		key_byval;
	Oid			key_type;
	Oid			collation;
	FmgrInfo	key_cmp;
} KeyHeaps;

#define KEY_HEAPS_MAX_QUERIES 100000
#define KEY_HEAPS_MAX_ENTRIES 10000000L

extern void key_heaps_init(KeyHeaps *h, FunctionCallInfo fcinfo, int key_argno, int nq, int k,
						   MemoryContext context);
extern void key_heaps_offer(KeyHeaps *h, int q, double distance, Datum key);
/* The distance above which nothing enters query q's heap (infinite while it holds fewer than k). */
extern double key_heaps_threshold(const KeyHeaps *h, int q);
/* Every heap sorted best first, as topk_rows (query_no[], id[] as key::text, distance[]). */
extern Datum key_heaps_result(KeyHeaps *h, FunctionCallInfo fcinfo, const char *name);

#endif
