/* The group scan of steering.ranking, compiled: the same answer as `ranking.scan_groups_py`.
 *
 * Why C: at fleet scale nine decisions in ten end in the client's ASN group, and the Python scan of
 * those nine appliances (membership test, rendezvous weight, a row tuple each, a sort, the Ranked
 * tuples) took ~10 µs, half of a decision (docs/steering.md). Here the rows are C structs, what is read
 * of each appliance comes from the model's packed arrays (`fleet.Packed`: a few hundred KB that stay in
 * the CPU caches, where the objects are scattered over a 1.4 GiB heap), and only the answer's entries
 * become Python objects.
 *
 * Input (built by ranking.group_chunks, which owns the tier order): a list of chunks
 *     (tier, detail, indices, common, kind)
 * in rank order. `indices` (a tuple of int, or an int64 array) are appliance indices, of which only
 * those whose packed kind is `kind` count (0 there: stale or unhealthy). Every one of them holds the
 * content when `wanted` is in `common`; otherwise one holds it when `wanted` is in its keys (or titles)
 * or it holds everything and `wanted` is in `ready`. Inside a chunk members go by rendezvous weight
 * (highest first, then lowest index); an appliance already taken by an earlier chunk is skipped;
 * members at or over the load limit go to a second list that follows every member under it. The scan
 * stops at the first chunk boundary where `want` members under the limit were found.
 *
 * References: the inputs outlive the call, so rows hold borrowed pointers; only the returned Ranked
 * tuples own references.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIB64 0x9E3779B97F4A7C15ULL   /* 2^64 / golden ratio: ranking.hrw_weight */

static PyObject *s_keys, *s_titles, *s_holds_all;

typedef struct {
    uint64_t weight;
    Py_ssize_t index;
    PyObject *appliance;   /* borrowed */
    int overloaded;
} Member;

typedef struct {
    PyObject *tier, *detail, *appliance;   /* borrowed */
    int overloaded;
} Row;

typedef struct {
    Row *rows;
    Py_ssize_t len, cap;
} Rows;

/* Room for `need` items of `size` bytes in *buf, whose capacity *cap at least doubles when it grows. */
static int reserve(void **buf, Py_ssize_t *cap, Py_ssize_t need, size_t size) {
    if (need <= *cap)
        return 0;
    Py_ssize_t grown_cap = need > 2 * *cap ? need : 2 * *cap;
    grown_cap = grown_cap < 16 ? 16 : grown_cap;
    void *grown = PyMem_Realloc(*buf, (size_t)grown_cap * size);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *buf = grown;
    *cap = grown_cap;
    return 0;
}

static int rows_push(Rows *r, PyObject *tier, PyObject *detail, const Member *m) {
    if (reserve((void **)&r->rows, &r->cap, r->len + 1, sizeof(Row)) < 0)
        return -1;
    r->rows[r->len++] = (Row){tier, detail, m->appliance, m->overloaded};
    return 0;
}

static int by_weight(const void *a, const void *b) {
    const Member *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* 1 when the attribute is true, 0 when false, -1 on error. */
static int attr_true(PyObject *obj, PyObject *name) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* 1 when `a` holds `wanted` (its keys or titles, or everything ready), 0 when not, -1 on error. */
static int holds(PyObject *a, PyObject *wanted, int is_key, PyObject *ready) {
    PyObject *own = PyObject_GetAttr(a, is_key ? s_keys : s_titles);
    if (own == NULL)
        return -1;
    int found = PySequence_Contains(own, wanted);
    Py_DECREF(own);
    if (found != 0)
        return found;
    int all = attr_true(a, s_holds_all);
    if (all <= 0)
        return all;
    return PySequence_Contains(ready, wanted);
}

static int taken(const Py_ssize_t *seen, Py_ssize_t n, Py_ssize_t index) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (seen[i] == index)
            return 1;
    return 0;
}

typedef struct {
    PyObject *apps, *wanted, *ready;
    const uint64_t *seeds;
    const double *loads;
    const unsigned char *kinds;
    Py_ssize_t n_apps;
    uint64_t h;
    double load_limit;
    int is_key;
} Scan;

/* The appliance index at `i` of a chunk's indices (a tuple of int, or the int64 buffer `view`). */
static Py_ssize_t index_at(PyObject *indices, const Py_buffer *view, Py_ssize_t i, Py_ssize_t n_apps) {
    Py_ssize_t index;
    if (view->obj == NULL) {
        index = PyLong_AsSsize_t(PyTuple_GET_ITEM(indices, i));
        if (index == -1 && PyErr_Occurred())
            return -1;
    } else {
        index = (Py_ssize_t)((const int64_t *)view->buf)[i];
    }
    if (index < 0 || index >= n_apps) {
        PyErr_SetString(PyExc_IndexError, "appliance index out of range");
        return -1;
    }
    return index;
}

/* The members of one chunk that can serve the content, sorted; returns their count or -1. */
static Py_ssize_t chunk_members(const Scan *sc, PyObject *indices, PyObject *common, int kind, Member **buf,
                                Py_ssize_t *cap) {
    Py_buffer view = {0};
    Py_ssize_t n, got = -1;
    if (PyTuple_Check(indices)) {
        n = PyTuple_GET_SIZE(indices);
    } else {
        if (PyObject_GetBuffer(indices, &view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
            return -1;
        if (view.itemsize != 8 || view.format == NULL || strcmp(view.format, "q") != 0) {
            PyErr_SetString(PyExc_TypeError, "chunk indices must be a tuple of int or an int64 array");
            goto done;
        }
        n = view.len / 8;
    }
    if (reserve((void **)buf, cap, n, sizeof(Member)) < 0)
        goto done;
    int everyone = PySequence_Contains(common, sc->wanted);
    if (everyone < 0)
        goto done;
    got = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t index = index_at(indices, &view, i, sc->n_apps);
        if (index < 0) {
            got = -1;
            goto done;
        }
        if (sc->kinds[index] != kind)
            continue;
        PyObject *a = PySequence_Fast_GET_ITEM(sc->apps, index);
        if (!everyone) {
            int held = holds(a, sc->wanted, sc->is_key, sc->ready);
            if (held < 0) {
                got = -1;
                goto done;
            }
            if (!held)
                continue;
        }
        (*buf)[got++] = (Member){(sc->h ^ sc->seeds[index]) * FIB64, index, a,
                                 sc->loads[index] >= sc->load_limit};
    }
    qsort(*buf, (size_t)got, sizeof(Member), by_weight);
done:
    if (view.obj != NULL)
        PyBuffer_Release(&view);
    return got;
}

/* Borrow the packed arrays (fleet.Packed: seeds uint64, loads double, kinds bytes), one entry per
 * appliance; 0 on success. */
static int borrow_packed(PyObject *packed, Py_ssize_t n_apps, Py_buffer views[3]) {
    static const char *formats[3] = {"Q", "d", "B"};
    static const Py_ssize_t sizes[3] = {8, 8, 1};
    if (!PyTuple_Check(packed) || PyTuple_GET_SIZE(packed) != 3) {
        PyErr_SetString(PyExc_TypeError, "packed must be fleet.Packed (seeds, loads, kinds)");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(packed, i), &views[i], PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
            while (i--)
                PyBuffer_Release(&views[i]);
            return -1;
        }
        const char *format = views[i].format ? views[i].format : "B";
        if (views[i].itemsize != sizes[i] || strcmp(format, formats[i]) != 0 || views[i].len != n_apps * sizes[i]) {
            PyErr_SetString(PyExc_TypeError, "packed arrays do not match the appliances");
            for (int j = 0; j <= i; j++)
                PyBuffer_Release(&views[j]);
            return -1;
        }
    }
    return 0;
}

/* One Ranked (a NamedTuple: a tuple subclass without a __dict__), filled in directly: calling its
 * Python-level __new__ cost more than the rest of building the answer. Other types are called. */
static PyObject *new_ranked(PyObject *ranked, PyObject *items[6]) {
    PyTypeObject *type = (PyTypeObject *)ranked;
    if (!PyType_Check(ranked) || !PyType_IsSubtype(type, &PyTuple_Type) || type->tp_dictoffset != 0)
        return PyObject_Vectorcall(ranked, items, 6, NULL);
    PyObject *entry = type->tp_alloc(type, 6);
    if (entry == NULL)
        return NULL;
    for (int i = 0; i < 6; i++) {
        Py_INCREF(items[i]);
        PyTuple_SET_ITEM(entry, i, items[i]);
    }
    /* Nothing an entry refers to refers back to it (appliances, tiers, numbers, strings), so it can never
     * be part of a reference cycle: untracked, the cyclic collector does not walk the ranking cache's
     * million entries again on every full collection (as CPython untracks tuples of atoms itself). */
    PyObject_GC_UnTrack(entry);
    return entry;
}

static PyObject *answer(Rows *under, Rows *over, Py_ssize_t want, PyObject *ranked, PyObject *limit_obj) {
    Py_ssize_t from_under = under->len < want ? under->len : want;
    Py_ssize_t from_over = want - from_under < over->len ? want - from_under : over->len;
    /* The answer's appliances are the only objects this touches: ask for all of them at once (their
     * reference counts are written below), so their cache misses overlap instead of queueing. */
    for (Py_ssize_t n = 0; n < from_under + from_over; n++)
        __builtin_prefetch(n < from_under ? under->rows[n].appliance : over->rows[n - from_under].appliance, 1, 3);
    PyObject *out = PyList_New(from_under + from_over);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t n = 0; n < from_under + from_over; n++) {
        Row *r = n < from_under ? &under->rows[n] : &over->rows[n - from_under];
        PyObject *rank = PyLong_FromSsize_t(n + 1);
        if (rank == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *items[6] = {rank, r->appliance, r->tier, r->overloaded ? Py_True : Py_False, r->detail,
                              limit_obj};
        PyObject *entry = new_ranked(ranked, items);
        Py_DECREF(rank);
        if (entry == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, n, entry);
    }
    return out;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *chunks, *apps, *packed, *wanted, *ready, *ranked, *limit_obj;
    unsigned long long h;
    Py_ssize_t want;
    int is_key;
    if (!PyArg_ParseTuple(args, "O!OOKnOOpOO:scan", &PyList_Type, &chunks, &apps, &packed, &h, &want, &limit_obj,
                          &wanted, &is_key, &ready, &ranked))
        return NULL;
    if (!PyList_Check(apps) && !PyTuple_Check(apps)) {
        PyErr_SetString(PyExc_TypeError, "apps must be a list or tuple");
        return NULL;
    }
    double load_limit = PyFloat_AsDouble(limit_obj);
    if (load_limit == -1.0 && PyErr_Occurred())
        return NULL;
    Py_buffer views[3];
    Py_ssize_t n_apps = PySequence_Fast_GET_SIZE(apps);
    if (borrow_packed(packed, n_apps, views) < 0)
        return NULL;
    Scan sc = {apps, wanted, ready, views[0].buf, views[1].buf, views[2].buf, n_apps, (uint64_t)h, load_limit,
               is_key};
    Rows under = {0}, over = {0};
    Member *buf = NULL;
    Py_ssize_t cap = 0, n_seen = 0, seen_cap = 0;
    Py_ssize_t *seen = NULL;
    PyObject *result = NULL;
    for (Py_ssize_t c = 0; c < PyList_GET_SIZE(chunks) && under.len < want; c++) {
        PyObject *chunk = PyList_GET_ITEM(chunks, c);
        if (!PyTuple_Check(chunk) || PyTuple_GET_SIZE(chunk) != 5 || !PyLong_Check(PyTuple_GET_ITEM(chunk, 4))) {
            PyErr_SetString(PyExc_TypeError, "chunk must be (tier, detail, indices, common, kind code)");
            goto done;
        }
        PyObject *tier = PyTuple_GET_ITEM(chunk, 0), *detail = PyTuple_GET_ITEM(chunk, 1);
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(chunk, 4));
        if (kind == -1 && PyErr_Occurred())
            goto done;
        Py_ssize_t got = chunk_members(&sc, PyTuple_GET_ITEM(chunk, 2), PyTuple_GET_ITEM(chunk, 3), (int)kind, &buf,
                                       &cap);
        if (got < 0)
            goto done;
        if (reserve((void **)&seen, &seen_cap, n_seen + got, sizeof(Py_ssize_t)) < 0)
            goto done;
        for (Py_ssize_t i = 0; i < got; i++) {
            Member *m = &buf[i];
            if (taken(seen, n_seen, m->index))
                continue;
            seen[n_seen++] = m->index;
            if (rows_push(m->overloaded ? &over : &under, tier, detail, m) < 0)
                goto done;
        }
    }
    result = answer(&under, &over, want, ranked, limit_obj);
done:
    for (int i = 0; i < 3; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(buf);
    PyMem_Free(seen);
    PyMem_Free(under.rows);
    PyMem_Free(over.rows);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(chunks, apps, packed, content_hash, want, load_limit, wanted, is_key, ready, ranked) -> list of Ranked"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "steering._groupscan",
                                    "The group scan of steering.ranking, compiled.", -1, methods};

PyMODINIT_FUNC PyInit__groupscan(void) {
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {{&s_keys, "keys"}, {&s_titles, "titles"}, {&s_holds_all, "holds_all"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].name);
        if (*names[i].slot == NULL)
            return NULL;
    }
    return PyModule_Create(&module);
}
