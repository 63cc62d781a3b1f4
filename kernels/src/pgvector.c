/*
 * pgvector's reductions, called from C. pgvector sums its inner products and norms in whatever order its
 * compiler vectorised them (it builds with -fassociative-math and -march=native), so no C written here could
 * reproduce those sums bit for bit; where a twin uses `<#>`, vector_norm() or l1_distance(), the kernel calls
 * the very function the operator runs.
 */
#include "kernels.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

static const char *const function_names[PGV_FUNCTION_COUNT] = {
	[PGV_NEGATIVE_INNER_PRODUCT] = "vector_negative_inner_product",
	[PGV_L2_DISTANCE] = "l2_distance",
	[PGV_COSINE_DISTANCE] = "cosine_distance",
	[PGV_NORM] = "vector_norm",
	[PGV_L1_DISTANCE] = "l1_distance",
};

static const int function_args[PGV_FUNCTION_COUNT] = {
	[PGV_NEGATIVE_INNER_PRODUCT] = 2,
	[PGV_L2_DISTANCE] = 2,
	[PGV_COSINE_DISTANCE] = 2,
	[PGV_NORM] = 1,
	[PGV_L1_DISTANCE] = 2,
};

/* Looked up once a backend: the code a function's FmgrInfo points to stays loaded for the backend's life. */
static FmgrInfo functions[PGV_FUNCTION_COUNT];
static bool found[PGV_FUNCTION_COUNT];

FmgrInfo *
pgvector_function(PgvectorFunction f)
{
	if (!found[f])
	{
		Oid			extension = get_extension_oid("vector", true);
		Oid			schema;
		Oid			vector_type;
		Oid			args[2];
		Oid			function;

		if (!OidIsValid(extension))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("pgembed_kernels needs pgvector (extension \"vector\") in this database")));
		schema = get_extension_schema(extension);
		vector_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("vector"),
									  ObjectIdGetDatum(schema));
		args[0] = args[1] = vector_type;
		function = LookupFuncName(list_make2(makeString(get_namespace_name(schema)),
											 makeString(pstrdup(function_names[f]))),
								  function_args[f], args, true);
		if (!OidIsValid(function))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("pgvector function %s not found", function_names[f])));
		fmgr_info_cxt(function, &functions[f], TopMemoryContext);
		found[f] = true;
	}
	return &functions[f];
}

double
pgvector_call(PgvectorFunction f, const KVector *a, const KVector *b)
{
	FmgrInfo   *function = pgvector_function(f);
	Datum		result;

	if (function_args[f] == 1)
		result = FunctionCall1Coll(function, InvalidOid, PointerGetDatum(a));
	else
		result = FunctionCall2Coll(function, InvalidOid, PointerGetDatum(a), PointerGetDatum(b));
	return DatumGetFloat8(result);
}
