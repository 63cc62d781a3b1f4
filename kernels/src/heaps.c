/*
 * Top-k heaps over (distance, key), one per query, shared by the multi-query scans (topk.c, estimate.c):
 * ordered as `ORDER BY distance, key` orders, PostgreSQL's float8 order (NaN last), then the key's btree
 * order in the aggregate's collation. Keys are copied into the aggregate's context when they enter a heap.
 */
#include "kernels.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

void
key_heaps_init(KeyHeaps *h, FunctionCallInfo fcinfo, int key_argno, int nq, int k, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	TypeCacheEntry *key_type;

	if (nq < 1 || nq > KEY_HEAPS_MAX_QUERIES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a scan takes 1 to %d queries, got %d", KEY_HEAPS_MAX_QUERIES, nq)));
	if (k < 1 || (long) k * nq > KEY_HEAPS_MAX_ENTRIES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("k must be at least 1, and queries x k at most %ld (got k = %d for %d queries)",
						KEY_HEAPS_MAX_ENTRIES, k, nq)));
	h->nq = nq;
	h->k = k;
	h->heaps = palloc(sizeof(Candidate) * nq * (Size) k);
	h->sizes = palloc0(sizeof(int) * nq);
	h->context = context;
	h->key_type = get_fn_expr_argtype(fcinfo->flinfo, key_argno);
	if (!OidIsValid(h->key_type))
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("cannot tell the type of the key")));
	get_typlenbyval(h->key_type, &h->key_len, &h->key_byval);
	key_type = lookup_type_cache(h->key_type, TYPECACHE_CMP_PROC_FINFO);
	if (!OidIsValid(key_type->cmp_proc))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("keys of type %s cannot be ordered", format_type_be(h->key_type))));
	fmgr_info_copy(&h->key_cmp, &key_type->cmp_proc_finfo, context);
	h->collation = PG_GET_COLLATION();
	MemoryContextSwitchTo(old);
}

static int
candidate_cmp(const KeyHeaps *h, const Candidate *a, const Candidate *b)
{
	int			c = float8_cmp_pg(a->distance, b->distance);

	if (c != 0)
		return c;
	return DatumGetInt32(FunctionCall2Coll((FmgrInfo *) &h->key_cmp, h->collation, a->key, b->key));
}

static void
sift_down(const KeyHeaps *h, Candidate *heap, int size, int i)
{
	for (;;)
	{
		int			worst = i;
		int			l = 2 * i + 1;
		int			r = l + 1;
		Candidate	t;

		if (l < size && candidate_cmp(h, &heap[l], &heap[worst]) > 0)
			worst = l;
		if (r < size && candidate_cmp(h, &heap[r], &heap[worst]) > 0)
			worst = r;
		if (worst == i)
			return;
		t = heap[i];
		heap[i] = heap[worst];
		heap[worst] = t;
		i = worst;
	}
}

void
key_heaps_offer(KeyHeaps *h, int q, double distance, Datum key)
{
	Candidate  *heap = h->heaps + (Size) q * h->k;
	int		   *size = &h->sizes[q];
	Candidate	c = {distance, key};
	MemoryContext old;

	if (*size == h->k && candidate_cmp(h, &c, &heap[0]) >= 0)
		return;
	old = MemoryContextSwitchTo(h->context);
	c.key = datumCopy(key, h->key_byval, h->key_len);
	MemoryContextSwitchTo(old);
	if (*size < h->k)
	{
		int			i = (*size)++;

		heap[i] = c;
		while (i > 0 && candidate_cmp(h, &heap[(i - 1) / 2], &heap[i]) < 0)
		{
			Candidate	t = heap[i];

			heap[i] = heap[(i - 1) / 2];
			heap[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
		return;
	}
	if (!h->key_byval)
		pfree(DatumGetPointer(heap[0].key));
	heap[0] = c;
	sift_down(h, heap, *size, 0);
}

double
key_heaps_threshold(const KeyHeaps *h, int q)
{
	double		worst;

	if (h->sizes[q] < h->k)
		return INFINITY;
	worst = h->heaps[(Size) q * h->k].distance;
	return isnan(worst) ? INFINITY : worst;
}

static int
candidate_qsort_cmp(const void *a, const void *b, void *arg)
{
	return candidate_cmp((const KeyHeaps *) arg, (const Candidate *) a, (const Candidate *) b);
}

Datum
key_heaps_result(KeyHeaps *h, FunctionCallInfo fcinfo, const char *name)
{
	TupleDesc	desc;
	long		total = 0;
	Datum	   *numbers;
	Datum	   *ids;
	Datum	   *distances;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	Oid			output;
	Oid			cast;
	bool		varlena;
	FmgrInfo	out;
	long		n = 0;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("%s must return a composite", name)));
	desc = BlessTupleDesc(desc);
	for (int q = 0; q < h->nq; q++)
		total += h->sizes[q];
	numbers = palloc(sizeof(Datum) * Max(total, 1));
	ids = palloc(sizeof(Datum) * Max(total, 1));
	distances = palloc(sizeof(Datum) * Max(total, 1));
	/* keys as `key::text` spells them (its cast where the type has one: char(n) trimmed, inet, boolean) */
	if (find_coercion_pathway(TEXTOID, h->key_type, COERCION_EXPLICIT, &cast) != COERCION_PATH_FUNC)
		cast = InvalidOid;
	if (OidIsValid(cast))
		fmgr_info(cast, &out);
	else
	{
		getTypeOutputInfo(h->key_type, &output, &varlena);
		fmgr_info(output, &out);
	}
	for (int q = 0; q < h->nq; q++)
	{
		Candidate  *heap = h->heaps + (Size) q * h->k;

		qsort_arg(heap, h->sizes[q], sizeof(Candidate), candidate_qsort_cmp, h);
		for (int i = 0; i < h->sizes[q]; i++, n++)
		{
			numbers[n] = Int32GetDatum(q + 1);
			ids[n] = OidIsValid(cast) ? FunctionCall1Coll(&out, h->collation, heap[i].key)
				: CStringGetTextDatum(OutputFunctionCall(&out, heap[i].key));
			distances[n] = Float8GetDatum(heap[i].distance);
		}
	}
	values[0] = PointerGetDatum(construct_array_builtin(numbers, (int) n, INT4OID));
	values[1] = PointerGetDatum(construct_array_builtin(ids, (int) n, TEXTOID));
	values[2] = PointerGetDatum(construct_array_builtin(distances, (int) n, FLOAT8OID));
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}
