/*
 * Arguments and results: every check a kernel needs before it touches its inputs, defined once.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "access/tupmacs.h"
#include "nodes/pg_list.h"
#include "nodes/primnodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#ifdef PGEMBED_SANITIZE
static void
free_block(void *arg)
{
	free(arg);
}

/* A malloc'd block of exactly `size` bytes, freed when the current memory context is. */
static void *
exact_block(Size size)
{
	void	   *block = calloc(1, size > 0 ? size : 1);
	MemoryContextCallback *callback;

	if (block == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	callback = palloc(sizeof(MemoryContextCallback));
	callback->func = free_block;
	callback->arg = block;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, callback);
	return block;
}

static const void *
exact_copy(const void *source, Size size)
{
	void	   *copy = exact_block(size);

	memcpy(copy, source, size);
	return copy;
}
#define INPUT(pointer, size) exact_copy((const void *) (pointer), (size))
#else
#define INPUT(pointer, size) ((const void *) (pointer))
#endif

void *
result_alloc(Size size)
{
#ifdef PGEMBED_SANITIZE
	return exact_block(size);
#else
	return palloc0(size);
#endif
}

Datum
result_datum(void *result, Size size)
{
#ifdef PGEMBED_SANITIZE
	void	   *copy = palloc(size);

	memcpy(copy, result, size);
	return PointerGetDatum(copy);
#else
	(void) size;
	return PointerGetDatum(result);
#endif
}

KVector *
new_vector(int dim)
{
	KVector    *v;

	check_result_dims(dim, "vector");
	v = result_alloc(KVECTOR_SIZE(dim));
	SET_VARSIZE(v, KVECTOR_SIZE(dim));
	v->dim = (int16) dim;
	return v;
}

Datum
vector_datum(KVector *v)
{
	return result_datum(v, KVECTOR_SIZE(v->dim));
}

void
check_same_dims(int a, int b)
{
	if (a != b)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", a, b)));
}

void
check_result_dims(long n, const char *what)
{
	if (n < 1 || n > KVECTOR_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a %s result of %ld dimensions is out of range (1 to %d)", what, n, KVECTOR_MAX_DIM)));
}

static const KVector *
checked_vector(const struct varlena *value, const char *name)
{
	const KVector *v = (const KVector *) value;
	Size		size = VARSIZE(value);

	if (size < offsetof(KVector, x) || v->dim < 1 || v->dim > KVECTOR_MAX_DIM || size != KVECTOR_SIZE(v->dim))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not a valid vector (%zu bytes)", name, size)));
	return v;
}

const KVector *
arg_vector(FunctionCallInfo fcinfo, int argno, const char *name)
{
	struct varlena *value = PG_DETOAST_DATUM(PG_GETARG_DATUM(argno));

	checked_vector(value, name);
	return INPUT(value, VARSIZE(value));
}

static ArrayType *
checked_array(FunctionCallInfo fcinfo, int argno, const char *name, int *n)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(argno);

	*n = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	if (array_contains_nulls(array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL", name)));
	return array;
}

VectorList
arg_vector_array(FunctionCallInfo fcinfo, int argno, const char *name)
{
	int			n;
	ArrayType  *array = checked_array(fcinfo, argno, name, &n);
	const char *end = (const char *) array + VARSIZE(array);
	const char *p = ARR_DATA_PTR(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	VectorList	list;

	get_typlenbyvalalign(ARR_ELEMTYPE(array), &typlen, &typbyval, &typalign);
	if (typlen != -1)
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("%s must be an array of vectors", name)));
	list.n = n;
	list.items = palloc(sizeof(KVector *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		const struct varlena *element = (const struct varlena *) p;

		if (p + VARHDRSZ_SHORT > end || (!VARATT_IS_1B(element) && p + VARHDRSZ > end) ||
			p + VARSIZE_ANY(element) > end)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("%s is not a valid array", name)));
		if (!VARATT_IS_4B_U(element))
			element = PG_DETOAST_DATUM(PointerGetDatum(element));
		checked_vector(element, name);
		list.items[i] = INPUT(element, VARSIZE(element));
		p = att_addlength_pointer(p, typlen, p);
		p = (const char *) att_align_nominal(p, typalign);
	}
	return list;
}

const int32 *
arg_int4_array(FunctionCallInfo fcinfo, int argno, const char *name, int *n)
{
	ArrayType  *array = checked_array(fcinfo, argno, name, n);

	return INPUT(ARR_DATA_PTR(array), sizeof(int32) * (Size) *n);
}

const float8 *
arg_float8_array(FunctionCallInfo fcinfo, int argno, const char *name, int *n)
{
	ArrayType  *array = checked_array(fcinfo, argno, name, n);

	return INPUT(ARR_DATA_PTR(array), sizeof(float8) * (Size) *n);
}

const uint8 *
arg_bytea(FunctionCallInfo fcinfo, int argno, int *len)
{
	bytea	   *value = PG_GETARG_BYTEA_PP(argno);

	*len = VARSIZE_ANY_EXHDR(value);
	return INPUT((const uint8 *) VARDATA_ANY(value), *len);
}

const VarBit *
arg_varbit(FunctionCallInfo fcinfo, int argno)
{
	VarBit	   *value = PG_GETARG_VARBIT_P(argno);

	if (VARSIZE(value) < VARHDRSZ + VARBITHDRSZ || VARBITLEN(value) < 0 ||
		VARSIZE(value) != VARBITTOTALLEN(VARBITLEN(value)))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("code is not a valid bit string")));
	return INPUT(value, VARSIZE(value));
}

int
arg_metric(FunctionCallInfo fcinfo, int argno)
{
	char	   *metric = text_to_cstring(PG_GETARG_TEXT_PP(argno));

	if (strcmp(metric, "l2") == 0)
		return METRIC_L2;
	if (strcmp(metric, "ip") == 0)
		return METRIC_IP;
	if (strcmp(metric, "cosine") == 0)
		return METRIC_COSINE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown metric \"%s\": cosine, ip or l2", metric)));
	return 0;
}

uint16
float_to_half(float f)
{
	uint32		bits;
	uint32		sign;
	uint32		magnitude;
	uint32		half;
	uint32		rest;

	memcpy(&bits, &f, sizeof(bits));
	sign = (bits >> 16) & 0x8000;
	magnitude = bits & 0x7fffffff;
	if (magnitude >= 0x7f800000)	/* inf, NaN: never reached, callers saturate first */
		return (uint16) (sign | 0x7c00 | (magnitude > 0x7f800000 ? 0x200 : 0));
	if (magnitude < 0x38800000)
	{
		/* Below 2^-14: a half subnormal, m * 2^-24 (scaling by 2^24 is exact; rintf rounds half to even). */
		float		a;

		memcpy(&a, &magnitude, sizeof(a));
		return (uint16) (sign | (uint32) rintf(a * 16777216.0f));
	}
	half = ((magnitude >> 23) - 112) << 10 | ((magnitude >> 13) & 0x3ff);
	rest = magnitude & 0x1fff;
	if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
		half += 1;				/* a carry into the exponent is the right result */
	if (half >= 0x7c00)
		half = 0x7c00;
	return (uint16) (sign | half);
}

bool
arg_is_constant(FunctionCallInfo fcinfo, int argno)
{
	Node	   *expr = fcinfo->flinfo->fn_expr;
	List	   *args;

	if (expr == NULL || !IsA(expr, FuncExpr))
		return false;
	args = ((FuncExpr *) expr)->args;
	return list_length(args) > argno && IsA(list_nth(args, argno), Const);
}
