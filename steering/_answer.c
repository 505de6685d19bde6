/* A steering answer from the ranking cache, compiled: the bytes `decision.render_answer` writes for
 * `GET /api/v1/steer?ip=IP&key=KEY[&limit=N]`, when the ranking is already cached and rendered.
 *
 * Why C: in the HTTP server, the Python path of such a request (yarl's query parsing, locating the client,
 * the cache key, the rendering, the metrics) cost ~40 µs of CPU more than aiohttp's whole "hello" request
 * (~30 µs), most of it waiting on memory between aiohttp and a 1.5 GiB model (docs/steering.md, "Bench").
 * Here it is one call. Its locating is also decision.locate's compiled form: `locate` below.
 *
 * The rule: answer only what is certain, return None for everything else and let the Python path
 * answer it (or refuse it: 400s are its business). So: a query of exactly the parameters ip, key and
 * optionally limit, each once, percent-decoded to printable ASCII without '+'; an address inet_pton
 * accepts that is not IPv4-mapped IPv6 (normalize_ip rewrites those); a key that passes
 * oca.contentkey.validate_key's rules; a cached ranking already rendered once (entry.json).
 * Locating is decision.locate's: a single covering prefix from the flat /24 index; otherwise the table's
 * own lookup, then GeoIP through the given callable; a prefix owner without a place in `bgp_places`
 * (it lacks an ASN or country, which GeoIP fills in) → None.
 *
 * A client the flat /24 index alone places (one covering prefix whose owners have a place) is first
 * looked up in the cache's finished answers by (content key, slot), which this module fills after each
 * full lookup: the answer is the same for every address of the /24 but for the address and the model's
 * age, so a hit reads neither the ranking key's parts nor the entry (Answers, below).
 *
 * lane: (parts, geo_lookup, entries, limit, load_limit, tail, counting, answers) as
 *        decision.RankingCache.answer_lane builds it, where parts is FleetModel.locate_parts (blocks,
 *        block_matches, lookup, bgp_places, country_region), counting is
 *        (counts, buckets, seconds, bounds, steer_offset, cache_counts): the arrays of
 *        metrics.DecisionCounts and the cache's (hits, misses), and answers is (RankingCache.answers,
 *        their size in bytes, the bound). Returns the body, or None.
 * An answer is counted as the Python path counts it: a decision of api "steer" at the entry's tier, its
 * time to locate and find the ranking, a cache hit; and one more compiled answer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define TRIE_SLOT (-1)          /* prefixes._TRIE */
#define MAX_KEY_BYTES 512       /* oca.contentkey.MAX_KEY_BYTES */
#define MAX_IP_TEXT 64
#define MAX_LIMIT 1000          /* service._limit */
#define STEER_PATH "/api/v1/steer?" /* service._STEER_QUERY */

static PyObject *s_appliances, *s_parent, *s_prefix, *s_json, *s_tier_slot;

typedef struct {
    const char *start;
    Py_ssize_t len;
} Span;

#include "_request_head.h"

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode `in` into `out` (at most `cap` bytes): only printable ASCII, no '+' (a space to the
 * form decoding yarl applies, never valid here). Returns the length, or -1 to leave it to Python. */
static Py_ssize_t decode(Span in, char *out, Py_ssize_t cap) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.start[i];
        if (c == '%') {
            int high = i + 2 < in.len ? hex_value(in.start[i + 1]) : -1;
            int low = i + 2 < in.len ? hex_value(in.start[i + 2]) : -1;
            if (high < 0 || low < 0)
                return -1;
            c = (unsigned char)(high << 4 | low);
            i += 2;
        } else if (c == '+') {
            return -1;
        }
        if (c < 0x21 || c > 0x7e || n >= cap)
            return -1;
        out[n++] = (char)c;
    }
    return n;
}

/* oca.contentkey.validate_key: [A-Za-z0-9._/-], 1..512 bytes, no leading or trailing '/', no empty,
 * '.' or '..' segment. */
static int valid_key(const char *key, Py_ssize_t len) {
    if (len < 1 || len > MAX_KEY_BYTES)
        return 0;
    Py_ssize_t seg = 0;
    for (Py_ssize_t i = 0; i <= len; i++) {
        char c = i < len ? key[i] : '/';
        if (c == '/') {
            Py_ssize_t n = i - seg;
            if (n == 0 || (n == 1 && key[seg] == '.') || (n == 2 && key[seg] == '.' && key[seg + 1] == '.'))
                return 0;
            seg = i + 1;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                     c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* The ip, key and limit parameters of the query after '?' in `path`; 0 when anything else is there. */
static int split_query(const char *path, Py_ssize_t len, Span *ip, Span *key, Span *limit) {
    const char *q = memchr(path, '?', (size_t)len);
    if (q == NULL)
        return 0;
    const char *end = path + len, *p = q + 1;
    ip->start = key->start = limit->start = NULL;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq == NULL)
            return 0;
        Span *field = NULL;
        size_t name = (size_t)(eq - p);
        if (name == 2 && memcmp(p, "ip", 2) == 0)
            field = ip;
        else if (name == 3 && memcmp(p, "key", 3) == 0)
            field = key;
        else if (name == 5 && memcmp(p, "limit", 5) == 0)
            field = limit;
        if (field == NULL || field->start != NULL)
            return 0;
        field->start = eq + 1;
        field->len = stop - (eq + 1);
        p = stop + 1;
    }
    return ip->start != NULL && key->start != NULL;
}

/* service._limit: digits only, 1..1000 (leading zeros allowed, as int() allows them). */
static PyObject *parse_limit(Span text, PyObject *fallback) {
    if (text.start == NULL)
        return Py_NewRef(fallback);
    char buf[16];
    Py_ssize_t n = decode(text, buf, (Py_ssize_t)sizeof(buf) - 1);
    if (n < 1)
        return NULL;
    long value = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return NULL;
        value = value * 10 + (buf[i] - '0');
    }
    if (value < 1 || value > MAX_LIMIT)
        return NULL;
    return PyLong_FromLong(value);
}

/* prefixes.normalize_ip's check of NUL-terminated `text`: 1 for IPv4, 0 for IPv6 (into `packed`), -1 for
 * what Python must handle: not an address (it raises InvalidAddress), or IPv4-mapped (it rewrites those).
 * An embedded NUL, which would hide the rest of the text from inet_pton, is not an address either. */
static int parse_address(const char *text, Py_ssize_t len, unsigned char packed[16]) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int v4 = memchr(text, ':', (size_t)len) == NULL;
    if (len > MAX_IP_TEXT || (Py_ssize_t)strlen(text) != len || inet_pton(v4 ? AF_INET : AF_INET6, text, packed) != 1)
        return -1;
    return !v4 && memcmp(packed, mapped, 12) == 0 ? -1 : v4;
}

/* The client's address as text: made only when Python needs it (a lookup in the trie, GeoIP). */
typedef struct {
    const char *text;
    Py_ssize_t len;
    PyObject *str;
} Address;

static PyObject *address_str(Address *a) {   /* borrowed: the Address owns it */
    if (a->str == NULL)
        a->str = PyUnicode_FromStringAndSize(a->text, a->len);
    return a->str;
}

/* The flat /24 index's slot for an IPv4 address (prefixes.PrefixTable.flat_index): 0 no prefix, TRIE_SLOT
 * several or longer ones, else a position in block_matches. */
static int read_slot(PyObject *blocks, const unsigned char *packed, int32_t *slot) {
    Py_buffer view;
    if (PyObject_GetBuffer(blocks, &view, PyBUF_FORMAT) < 0)
        return -1;
    uint32_t block = ((uint32_t)packed[0] << 16) | ((uint32_t)packed[1] << 8) | packed[2];
    int ok = view.itemsize == 4 && view.format != NULL && strcmp(view.format, "i") == 0 &&
             (Py_ssize_t)block < view.len / 4;
    *slot = ok ? ((const int32_t *)view.buf)[block] : 0;
    PyBuffer_Release(&view);
    if (!ok) {
        PyErr_SetString(PyExc_TypeError, "blocks must be an int32 array of 2^24 slots");
        return -1;
    }
    return 0;
}

/* decision.locate's matches for a parsed address: the flat index's single match when it has one, else
 * the table's lookup(address, bits). New reference (a tuple), or NULL with an error set. */
static PyObject *covering(PyObject *lane, Address *address, int v4, const unsigned char *packed,
                          int32_t *flat_slot) {
    PyObject *blocks = PyTuple_GET_ITEM(lane, 0), *block_matches = PyTuple_GET_ITEM(lane, 1);
    *flat_slot = 0;
    if (v4 && blocks != Py_None) {
        int32_t slot;
        if (read_slot(blocks, packed, &slot) < 0)
            return NULL;
        if (slot == 0)
            return PyTuple_New(0);
        if (slot != TRIE_SLOT) {
            PyObject *match = PyList_GetItem(block_matches, slot);   /* borrowed */
            if (match == NULL)
                return NULL;
            PyObject *parent = PyObject_GetAttr(match, s_parent);
            if (parent == NULL)
                return NULL;
            int single = parent == Py_None;
            Py_DECREF(parent);
            if (single) {
                *flat_slot = slot;
                return PyTuple_Pack(1, match);
            }
        }
    }
    if (address_str(address) == NULL)
        return NULL;
    PyObject *matches = PyObject_CallFunction(PyTuple_GET_ITEM(lane, 2), "Oi", address->str, v4 ? 32 : 128);
    if (matches != NULL && !PyTuple_Check(matches)) {
        Py_DECREF(matches);
        PyErr_SetString(PyExc_TypeError, "lookup must return a tuple");
        return NULL;
    }
    return matches;
}

/* Where a client is (decision.locate's Client fields but the address). All references owned. */
typedef struct {
    PyObject *matches, *asn, *country, *region;
    const char *source;
    int32_t flat_slot; /* the flat index's slot when it alone located the client, else 0 */
} Located;

static void located_clear(Located *at) {
    Py_CLEAR(at->matches);
    Py_CLEAR(at->asn);
    Py_CLEAR(at->country);
    Py_CLEAR(at->region);
}

/* decision.locate for a parsed address, with parts = (blocks, block_matches, lookup, bgp_places,
 * country_region) and geo (a GeoLookup.lookup, or None). 1: located; 0: Python must locate it (a prefix
 * owner without a place: GeoIP completes it); -1: an error is set. */
static int locate_client(PyObject *parts, PyObject *geo, Address *address, int v4, const unsigned char *packed,
                         Located *at) {
    *at = (Located){NULL, NULL, NULL, NULL, NULL, 0};
    at->matches = covering(parts, address, v4, packed, &at->flat_slot);
    if (at->matches == NULL)
        return -1;
    if (PyTuple_GET_SIZE(at->matches) > 0) {
        PyObject *first = PyObject_GetAttr(PyTuple_GET_ITEM(at->matches, 0), s_appliances);
        if (first == NULL)
            return -1;
        Py_ssize_t owner = PyTuple_Check(first) && PyTuple_GET_SIZE(first) > 0
                               ? PyLong_AsSsize_t(PyTuple_GET_ITEM(first, 0)) : -1;
        Py_DECREF(first);
        PyObject *place = owner < 0 ? NULL : PyTuple_GetItem(PyTuple_GET_ITEM(parts, 3), owner);
        if (place == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "a match's appliances must be a non-empty tuple of int");
            return -1;
        }
        if (place == Py_None || !PyTuple_Check(place) || PyTuple_GET_SIZE(place) != 3)
            return 0;
        at->asn = Py_NewRef(PyTuple_GET_ITEM(place, 0));
        at->country = Py_NewRef(PyTuple_GET_ITEM(place, 1));
        at->region = Py_NewRef(PyTuple_GET_ITEM(place, 2));
        at->source = "bgp";
        return 1;
    }
    at->asn = Py_NewRef(Py_None), at->country = Py_NewRef(Py_None);
    if (geo != Py_None) {
        if (address_str(address) == NULL)
            return -1;
        PyObject *answer = PyObject_CallOneArg(geo, address->str);
        if (answer == NULL)
            return -1;
        if (!PyTuple_Check(answer) || PyTuple_GET_SIZE(answer) != 2) {
            Py_DECREF(answer);
            PyErr_SetString(PyExc_TypeError, "geo_lookup must return (asn, country)");
            return -1;
        }
        Py_SETREF(at->asn, Py_NewRef(PyTuple_GET_ITEM(answer, 0)));
        Py_SETREF(at->country, Py_NewRef(PyTuple_GET_ITEM(answer, 1)));
        Py_DECREF(answer);
    }
    at->source = at->asn != Py_None || at->country != Py_None ? "geoip" : "none";
    int has_country = at->country != Py_None ? PyObject_IsTrue(at->country) : 0;
    if (has_country < 0)
        return -1;
    /* decision.locate: the country's region, when there is a country */
    PyObject *region = has_country ? PyDict_GetItemWithError(PyTuple_GET_ITEM(parts, 4), at->country) : NULL;
    if (region == NULL && PyErr_Occurred())
        return -1;
    at->region = Py_NewRef(region != NULL ? region : Py_None);
    return 1;
}

/* The cache key of decision.RankingCache.rank for a located client. */
static PyObject *ranking_key(Located *at, PyObject *key, PyObject *limit, PyObject *load_limit) {
    Py_ssize_t n = PyTuple_GET_SIZE(at->matches);
    PyObject *owners;
    if (n == 1) {
        owners = PyObject_GetAttr(PyTuple_GET_ITEM(at->matches, 0), s_appliances);
    } else {
        owners = PyTuple_New(n);
        for (Py_ssize_t i = 0; owners != NULL && i < n; i++) {
            PyObject *apps = PyObject_GetAttr(PyTuple_GET_ITEM(at->matches, i), s_appliances);
            if (apps == NULL)
                Py_CLEAR(owners);
            else
                PyTuple_SET_ITEM(owners, i, apps);
        }
    }
    if (owners == NULL)
        return NULL;
    PyObject *ranking_key = PyTuple_Pack(8, owners, at->asn, at->country, at->region, key, Py_None, limit,
                                         load_limit);
    Py_DECREF(owners);
    return ranking_key;
}

/* The answer's pieces, gathered before the bytes object is made at its final size, and what they point
 * into: references it owns (released by parts_free) and the client's address as text. */
#define INLINE_PARTS 64
#define MAX_OWNED 4
typedef struct {
    Span inline_parts[INLINE_PARTS];
    Span *parts;
    Py_ssize_t len, cap, total;
    PyObject *owned[MAX_OWNED];
    int n_owned;
    char ip[MAX_IP_TEXT + 1];
} Parts;

static void parts_init(Parts *p) {
    p->parts = p->inline_parts, p->len = 0, p->cap = INLINE_PARTS, p->total = 0, p->n_owned = 0;
}

static void parts_free(Parts *p) {
    while (p->n_owned > 0)
        Py_DECREF(p->owned[--p->n_owned]);
    if (p->parts != p->inline_parts)
        PyMem_Free(p->parts);
}

/* Keep `obj` (a new reference, taken over) alive while the parts point into it. */
static int own(Parts *p, PyObject *obj) {
    if (p->n_owned == MAX_OWNED) {
        Py_DECREF(obj);
        PyErr_SetString(PyExc_RuntimeError, "an answer owning too many objects");
        return -1;
    }
    p->owned[p->n_owned++] = obj;
    return 0;
}

static int add(Parts *p, const char *data, Py_ssize_t len) {
    if (p->len == p->cap) {
        Py_ssize_t cap = 2 * p->cap;
        Span *grown = PyMem_Malloc((size_t)cap * sizeof(Span));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(grown, p->parts, (size_t)p->len * sizeof(Span));
        if (p->parts != p->inline_parts)
            PyMem_Free(p->parts);
        p->parts = grown, p->cap = cap;
    }
    p->parts[p->len++] = (Span){data, len};
    p->total += len;
    return 0;
}

static int add_str(Parts *p, const char *s) { return add(p, s, (Py_ssize_t)strlen(s)); }

static int add_bytes(Parts *p, PyObject *bytes) {
    if (!PyBytes_Check(bytes)) {
        PyErr_SetString(PyExc_TypeError, "expected bytes");
        return -1;
    }
    return add(p, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
}

/* A match's prefix text (canonical, so no JSON escaping: digits, hex, '.', ':' and '/'). The text stays
 * alive after the reference is dropped: the match, which `matches` holds, holds it. */
static int add_prefix(Parts *p, PyObject *matches, Py_ssize_t i) {
    if (i < 0 || i >= PyTuple_GET_SIZE(matches)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_IndexError, "a rendered ranking names a prefix the client does not have");
        return -1;
    }
    PyObject *prefix = PyObject_GetAttr(PyTuple_GET_ITEM(matches, i), s_prefix);
    if (prefix == NULL)
        return -1;
    Py_ssize_t len;
    const char *text = PyUnicode_Check(prefix) ? PyUnicode_AsUTF8AndSize(prefix, &len) : NULL;
    Py_DECREF(prefix);
    if (text == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "a prefix must be a str");
        return -1;
    }
    return add(p, text, len);
}

/* The gathered parts as one bytes object, after `head` (head_len bytes). */
static PyObject *join(const Parts *p, const char *head, Py_ssize_t head_len) {
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, head_len + p->total);
    if (bytes != NULL) {
        char *at = PyBytes_AS_STRING(bytes);
        memcpy(at, head, (size_t)head_len);
        at += head_len;
        for (Py_ssize_t i = 0; i < p->len; i++) {
            memcpy(at, p->parts[i].start, (size_t)p->parts[i].len);
            at += p->parts[i].len;
        }
    }
    return bytes;
}

/* The answer after the client's address up to the model's age: the matched prefix, the entry's pieces
 * (decision.answer_json; their prefix marks filled in) and the model tail. 1 added, 0 the entry is not
 * rendered yet, -1 error. */
static int add_rest(Parts *p, PyObject *entry, PyObject *matches, PyObject *tail) {
    PyObject *pieces = PyObject_GetAttr(entry, s_json);
    if (pieces == NULL || own(p, pieces) < 0 || own(p, Py_NewRef(matches)) < 0)
        return -1;
    if (pieces == Py_None || !PyTuple_Check(pieces))
        return 0;
    int empty = PyTuple_GET_SIZE(matches) == 0;
    if (add_str(p, empty ? "\",\"matched_prefix\":null," : "\",\"matched_prefix\":\"") < 0 ||
        (!empty && (add_prefix(p, matches, 0) < 0 || add_str(p, "\",") < 0)))
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(pieces); i++) {
        PyObject *piece = PyTuple_GET_ITEM(pieces, i);
        if ((PyBytes_Check(piece) ? add_bytes(p, piece) : add_prefix(p, matches, PyLong_AsSsize_t(piece))) < 0)
            return -1;
    }
    return add_bytes(p, tail) < 0 ? -1 : 1;
}

/* render_answer's bytes (ANSWER_VERSION 1) before `rest` (add_rest's, or the finished answers'): the
 * client's address, which p->ip holds. */
static int add_client(Parts *p, Py_ssize_t ip_len) {
    return add_str(p, "{\"version\":1,\"client\":{\"ip\":\"") < 0 ? -1 : add(p, p->ip, ip_len);
}

/* ...and after it: the model's age. */
static int add_age(Parts *p, PyObject *age) { return add_bytes(p, age) < 0 ? -1 : add_str(p, "}}"); }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A writable view of one of the counting arrays, of items of `format` ("q" or "d"). */
static int view_of(PyObject *obj, const char *format, Py_ssize_t min_items, Py_buffer *view) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != 8 || view->format == NULL || strcmp(view->format, format) != 0 ||
        view->len / 8 < min_items) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "a counting array must be array('%s') of %zd items or more", format, min_items);
        return -1;
    }
    return 0;
}

/* Count one compiled answer as the Python path counts a decision (see the top of this file), at the tier
 * of `slot` (CachedRanking.tier_slot). */
static int count(PyObject *counting, Py_ssize_t slot, double seconds) {
    if (!PyTuple_Check(counting) || PyTuple_GET_SIZE(counting) != 6) {
        PyErr_SetString(PyExc_TypeError, "counting must be a tuple of 6");
        return -1;
    }
    Py_ssize_t steer = PyLong_AsSsize_t(PyTuple_GET_ITEM(counting, 4));
    if (PyErr_Occurred())
        return -1;
    Py_buffer counts, buckets, sum, bounds, cache;
    if (view_of(PyTuple_GET_ITEM(counting, 0), "q", 1, &counts) < 0)
        return -1;
    if (view_of(PyTuple_GET_ITEM(counting, 3), "d", 0, &bounds) < 0)
        goto counts_only;
    Py_ssize_t n_bounds = bounds.len / 8;
    if (view_of(PyTuple_GET_ITEM(counting, 1), "q", n_bounds + 1, &buckets) < 0)
        goto bounds_too;
    if (view_of(PyTuple_GET_ITEM(counting, 2), "d", 1, &sum) < 0)
        goto buckets_too;
    if (view_of(PyTuple_GET_ITEM(counting, 5), "q", 1, &cache) < 0)
        goto sum_too;
    /* The last count is the compiled answers; the ones before it, (api, tier) pairs. */
    Py_ssize_t n_counts = counts.len / 8, at = steer + slot;
    int rc = -1;
    if (slot < 0 || steer < 0 || at >= n_counts - 1) {
        PyErr_SetString(PyExc_IndexError, "a tier slot outside the decision counts");
    } else {
        int64_t *c = counts.buf;
        c[at] += 1;
        c[n_counts - 1] += 1;
        const double *bound = bounds.buf;
        Py_ssize_t b = 0;
        while (b < n_bounds && seconds > bound[b])   /* `le`: a bound counts what equals it */
            b++;
        ((int64_t *)buckets.buf)[b] += 1;
        ((double *)sum.buf)[0] += seconds;
        ((int64_t *)cache.buf)[0] += 1;
        rc = 0;
    }
    PyBuffer_Release(&cache);
    PyBuffer_Release(&sum);
    PyBuffer_Release(&buckets);
    PyBuffer_Release(&bounds);
    PyBuffer_Release(&counts);
    return rc;
sum_too:
    PyBuffer_Release(&sum);
buckets_too:
    PyBuffer_Release(&buckets);
bounds_too:
    PyBuffer_Release(&bounds);
counts_only:
    PyBuffer_Release(&counts);
    return -1;
}

/* An entry's tier (CachedRanking.tier_slot), which the finished answers keep in one byte: 0..255, or -1
 * with an error set. */
static long tier_of(PyObject *entry) {
    PyObject *slot = PyObject_GetAttr(entry, s_tier_slot);
    long tier = slot == NULL ? -1 : PyLong_AsLong(slot);
    Py_XDECREF(slot);
    if ((tier < 0 || tier > 255) && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "a tier slot outside 0..255");
    return tier < 0 || tier > 255 ? -1 : tier;
}

/* A found entry's answer for this client into `p`, counted at `tier` (the time counted is up to the entry
 * found): 1, 0 when the entry is not rendered yet, -1 on error. */
static int answer_entry(Parts *p, PyObject *lane, PyObject *entry, long tier, Py_ssize_t ip_len, PyObject *matches,
                        PyObject *age, double started) {
    double seconds = now() - started;
    int r = add_client(p, ip_len) < 0 ? -1 : add_rest(p, entry, matches, PyTuple_GET_ITEM(lane, 5));
    if (r <= 0)
        return r;
    if (add_age(p, age) < 0)
        return -1;
    return count(PyTuple_GET_ITEM(lane, 6), tier, seconds) < 0 ? -1 : 1;
}

/* The ranking cache's finished answers (decision.RankingCache.answers) for clients the flat /24 index
 * alone places (one covering prefix, whose owners have a place). Such a client's ranking key — owners,
 * ASN, country, region — and matched prefix follow from its /24's slot, so within one lane (one model,
 * load limit and default limit) its answer at the default limit is the same for every address in the
 * /24 but for the address and the model's age: stored once as "KEY SLOT" → the tier slot in one byte,
 * then add_rest's bytes. A hit reads the flat index, one dict entry and one bytes object, instead of the
 * entry, its pieces and the client's prefix. Filled here after each full lookup; bounded: `size[0]`
 * bytes (answers and keys) at most `max`, then it starts again empty; max 0 turns it off.
 * answers: (dict, size, max), as answer_lane passes it. */
typedef struct {
    PyObject *index;
    int64_t *size;
    long long max;
    Py_buffer view;
} Answers;

static int answers_open(PyObject *answers, Answers *a) {
    if (!PyTuple_Check(answers) || PyTuple_GET_SIZE(answers) != 3 || !PyDict_Check(PyTuple_GET_ITEM(answers, 0))) {
        PyErr_SetString(PyExc_TypeError, "answers must be (dict, array('q'), max bytes)");
        return -1;
    }
    a->index = PyTuple_GET_ITEM(answers, 0);
    a->max = PyLong_AsLongLong(PyTuple_GET_ITEM(answers, 2));
    if (a->max == -1 && PyErr_Occurred())
        return -1;
    if (view_of(PyTuple_GET_ITEM(answers, 1), "q", 1, &a->view) < 0)
        return -1;
    a->size = a->view.buf;
    return 0;
}

/* "KEY SLOT": a valid key holds no space. */
static PyObject *answers_key(const char *key, Py_ssize_t key_len, int32_t slot) {
    char text[MAX_KEY_BYTES + 16];
    memcpy(text, key, (size_t)key_len);
    int n = snprintf(text + key_len, 16, " %d", (int)slot);
    return PyUnicode_FromStringAndSize(text, key_len + n);
}

static int store_answer(Answers *a, PyObject *name, PyObject *value) {
    int64_t cost = (int64_t)(PyBytes_GET_SIZE(value) + PyUnicode_GET_LENGTH(name));
    if (cost > a->max)
        return 0;
    if (*a->size + cost > a->max) {
        PyDict_Clear(a->index);
        *a->size = 0;
    }
    if (PyDict_SetItem(a->index, name, value) < 0)
        return -1;
    *a->size += cost;
    return 0;
}

static int keep_answer(Answers *a, const char *key, Py_ssize_t key_len, int32_t slot, PyObject *entry, long tier,
                       PyObject *matches, PyObject *tail) {
    char tier_byte = (char)tier;
    Parts p;
    parts_init(&p);
    PyObject *value = NULL, *name = NULL;
    int r = add_rest(&p, entry, matches, tail);
    if (r > 0) {
        value = join(&p, &tier_byte, 1);
        name = value == NULL ? NULL : answers_key(key, key_len, slot);
        r = name == NULL ? -1 : store_answer(a, name, value);
    }
    Py_XDECREF(value);
    Py_XDECREF(name);
    parts_free(&p);
    return r;
}

/* Keep an entry's answer (at `tier`) for every client of `slot` (see Answers). 0 kept or left out, -1 error. */
static int remember_answer(PyObject *answers, const char *key, Py_ssize_t key_len, int32_t slot, PyObject *entry,
                           long tier, PyObject *matches, PyObject *tail) {
    Answers a;
    if (answers_open(answers, &a) < 0)
        return -1;
    int r = a.max > 0 ? keep_answer(&a, key, key_len, slot, entry, tier, matches, tail) : 0;
    PyBuffer_Release(&a.view);
    return r;
}

/* The answer from the finished answers into `p`: 1 answered and counted, 0 not there, -1 error. */
static int indexed_answer(Parts *p, PyObject *lane, PyObject *blocks, const unsigned char *packed, const char *key,
                          Py_ssize_t key_len, Py_ssize_t ip_len, PyObject *age, double started) {
    Answers a;
    int32_t slot;
    if (answers_open(PyTuple_GET_ITEM(lane, 7), &a) < 0)
        return -1;
    int r = a.max > 0 ? read_slot(blocks, packed, &slot) : 0;
    PyBuffer_Release(&a.view);
    if (r < 0 || a.max == 0 || slot <= 0)
        return r;
    PyObject *name = answers_key(key, key_len, slot);
    if (name == NULL)
        return -1;
    PyObject *value = PyDict_GetItemWithError(a.index, name); /* borrowed */
    Py_DECREF(name);
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyBytes_Check(value) || PyBytes_GET_SIZE(value) < 1) {
        PyErr_SetString(PyExc_TypeError, "a finished answer must be bytes: its tier slot, then the answer");
        return -1;
    }
    if (own(p, Py_NewRef(value)) < 0)
        return -1;
    double seconds = now() - started;
    const char *stored = PyBytes_AS_STRING(value);
    if (add_client(p, ip_len) < 0 || add(p, stored + 1, PyBytes_GET_SIZE(value) - 1) < 0 || add_age(p, age) < 0)
        return -1;
    return count(PyTuple_GET_ITEM(lane, 6), (unsigned char)stored[0], seconds) < 0 ? -1 : 1;
}

/* The answer through locating the client and the ranking cache's entries into `p`: 1 answered and
 * counted (and kept in the finished answers when `plain` and the flat index placed the client), 0 not
 * cached, not rendered or not for this module, -1 error. */
static int full_answer(Parts *p, PyObject *lane, const char *key, Py_ssize_t key_len, Py_ssize_t ip_len, int v4,
                       const unsigned char *packed, int plain, Span limit_text, PyObject *age, double started) {
    PyObject *limit = parse_limit(limit_text, PyTuple_GET_ITEM(lane, 3));
    if (limit == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *key_obj = NULL, *rkey = NULL;
    Address address = {p->ip, ip_len, NULL};
    Located at = {NULL, NULL, NULL, NULL, NULL, 0};
    int r = -1;
    key_obj = PyUnicode_FromStringAndSize(key, key_len);
    if (key_obj == NULL)
        goto done;
    r = locate_client(PyTuple_GET_ITEM(lane, 0), PyTuple_GET_ITEM(lane, 1), &address, v4, packed, &at);
    if (r <= 0)
        goto done;
    r = -1;
    rkey = ranking_key(&at, key_obj, limit, PyTuple_GET_ITEM(lane, 4));
    if (rkey == NULL)
        goto done;
    PyObject *entry = PyDict_GetItemWithError(PyTuple_GET_ITEM(lane, 2), rkey); /* borrowed */
    if (entry == NULL) {
        r = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    long tier = tier_of(entry);
    if (tier < 0 || own(p, Py_NewRef(entry)) < 0)
        goto done;
    r = answer_entry(p, lane, entry, tier, ip_len, at.matches, age, started);
    if (r > 0 && plain && at.flat_slot > 0 &&
        remember_answer(PyTuple_GET_ITEM(lane, 7), key, key_len, at.flat_slot, entry, tier, at.matches,
                        PyTuple_GET_ITEM(lane, 5)) < 0)
        r = -1;
done:
    located_clear(&at);
    Py_XDECREF(address.str);
    Py_XDECREF(key_obj);
    Py_XDECREF(limit);
    Py_XDECREF(rkey);
    return r;
}

/* The answer's parts for request target `path` (see the top of this file): 1 answered and counted, 0
 * for the Python path, -1 error. */
static int answer_parts(Parts *p, const char *path, Py_ssize_t path_len, PyObject *lane, PyObject *age) {
    double started = now();
    if (!PyTuple_Check(lane) || PyTuple_GET_SIZE(lane) != 8 || !PyTuple_Check(PyTuple_GET_ITEM(lane, 0)) ||
        PyTuple_GET_SIZE(PyTuple_GET_ITEM(lane, 0)) != 5) {
        PyErr_SetString(PyExc_TypeError, "lane must be a tuple of 8, its model parts a tuple of 5");
        return -1;
    }
    Span ip_text, key_text, limit_text;
    char key[MAX_KEY_BYTES + 1];
    if (!split_query(path, path_len, &ip_text, &key_text, &limit_text))
        return 0;
    Py_ssize_t ip_len = decode(ip_text, p->ip, MAX_IP_TEXT), key_len = decode(key_text, key, MAX_KEY_BYTES);
    if (ip_len < 1 || key_len < 1 || !valid_key(key, key_len))
        return 0;
    p->ip[ip_len] = 0, key[key_len] = 0;
    unsigned char packed[16];
    int v4 = parse_address(p->ip, ip_len, packed);
    if (v4 < 0)
        return 0;
    PyObject *blocks = PyTuple_GET_ITEM(PyTuple_GET_ITEM(lane, 0), 0);
    int plain = v4 && limit_text.start == NULL && blocks != Py_None;
    int r = plain ? indexed_answer(p, lane, blocks, packed, key, key_len, ip_len, age, started) : 0;
    return r != 0 ? r : full_answer(p, lane, key, key_len, ip_len, v4, packed, plain, limit_text, age, started);
}

/* answer(path, lane, age) -> body | None */
static PyObject *answer(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyUnicode_Check(args[0]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "answer(path: str, lane: tuple, age: bytes)");
        return NULL;
    }
    Py_ssize_t path_len;
    const char *path = PyUnicode_AsUTF8AndSize(args[0], &path_len);
    if (path == NULL)
        return NULL;
    Parts p;
    parts_init(&p);
    int r = answer_parts(&p, path, path_len, args[1], args[2]);
    PyObject *body = r < 0 ? NULL : r == 0 ? Py_NewRef(Py_None) : join(&p, "", 0);
    parts_free(&p);
    return body;
}

/* The Date field aiohttp writes (RFC 9110 §5.6.7 IMF-fixdate, always English), made once a second. */
static Py_ssize_t date_field(char *out, size_t cap) {
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static time_t made_at = -1;
    static char field[64];
    static int field_len;
    time_t t = time(NULL);
    if (t != made_at) {
        struct tm tm;
        gmtime_r(&t, &tm);
        field_len = snprintf(field, sizeof(field), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n", days[tm.tm_wday],
                             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        made_at = t;
    }
    if ((size_t)field_len >= cap)
        return 0;
    memcpy(out, field, (size_t)field_len);
    return field_len;
}

/* respond(data, lane, age, server) -> response | None | False: the bytes one read from a connection
 * brought, when they are exactly one plain GET head (_request_head.h) of a steer query, answered here as
 * aiohttp's steer handler would answer it, status line and fields included (`server`: aiohttp's Server
 * field value) — or None: one plain GET head this module does not answer (another path, a ranking not
 * cached, or `lane` None), after which the connection's parser stands at a message boundary; False:
 * anything else. */
static PyObject *respond(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[2]) || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "respond(data: bytes, lane: tuple | None, age: bytes, server: bytes)");
        return NULL;
    }
    Span target;
    if (!plain_request(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), &target))
        Py_RETURN_FALSE;
    size_t steer_len = strlen(STEER_PATH);
    if (args[1] == Py_None || (size_t)target.len < steer_len || memcmp(target.start, STEER_PATH, steer_len) != 0)
        Py_RETURN_NONE;
    Parts p;
    parts_init(&p);
    PyObject *response = NULL;
    int r = answer_parts(&p, target.start, target.len, args[1], args[2]);
    if (r == 0)
        response = Py_NewRef(Py_None);
    if (r > 0) {
        char head[320];
        int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zd\r\n",
                         p.total);
        Py_ssize_t len = n + date_field(head + n, sizeof(head) - (size_t)n), server = PyBytes_GET_SIZE(args[3]);
        if (server + 12 > (Py_ssize_t)sizeof(head) - len) {
            PyErr_SetString(PyExc_ValueError, "a Server field value that long");
        } else {
            memcpy(head + len, "Server: ", 8);
            memcpy(head + len + 8, PyBytes_AS_STRING(args[3]), (size_t)server);
            memcpy(head + len + 8 + server, "\r\n\r\n", 4);
            response = join(&p, head, len + 12 + server);
        }
    }
    parts_free(&p);
    return response;
}

static PyObject *s_bgp, *s_geoip, *s_none;

/* locate(ip, parts, geo_lookup, client_type) -> Client | None: decision.locate for an address given as
 * text, or None where Python must do it (not an address, IPv4-mapped, a prefix owner without a place). */
static PyObject *locate(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ip_obj, *parts, *geo, *client_type;
    if (!PyArg_ParseTuple(args, "UO!OO!", &ip_obj, &PyTuple_Type, &parts, &geo, &PyType_Type, &client_type))
        return NULL;
    if (PyTuple_GET_SIZE(parts) != 5 || !PyType_IsSubtype((PyTypeObject *)client_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "locate(ip, parts of 5, geo_lookup, a tuple type)");
        return NULL;
    }
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(ip_obj, &len);
    if (text == NULL)
        return NULL;
    unsigned char packed[16];
    int v4 = parse_address(text, len, packed);
    if (v4 < 0)
        Py_RETURN_NONE;
    Address address = {text, len, Py_NewRef(ip_obj)};
    Located at;
    int found = locate_client(parts, geo, &address, v4, packed, &at);
    PyObject *client = NULL;
    if (found == 0) {
        client = Py_NewRef(Py_None);
    } else if (found > 0) {
        /* Client(address, asn, country, region, matches, source): filled as a tuple of its type */
        client = ((PyTypeObject *)client_type)->tp_alloc((PyTypeObject *)client_type, 6);
        if (client != NULL) {
            PyObject *source = at.source[0] == 'b' ? s_bgp : at.source[0] == 'g' ? s_geoip : s_none;
            PyObject *items[6] = {address.str, at.asn, at.country, at.region, at.matches, source};
            for (int i = 0; i < 6; i++)
                PyTuple_SET_ITEM(client, i, Py_NewRef(items[i]));
        }
    }
    located_clear(&at);
    Py_DECREF(address.str);
    return client;
}

static PyMethodDef methods[] = {
    {"locate", locate, METH_VARARGS,
     "locate(ip, parts, geo_lookup, client_type) -> Client | None: decision.locate, compiled (steering/_answer.c)"},
    {"answer", (PyCFunction)(void (*)(void))answer, METH_FASTCALL,
     "answer(path, lane, age) -> body | None: a cached steering answer (steering/_answer.c)"},
    {"respond", (PyCFunction)(void (*)(void))respond, METH_FASTCALL,
     "respond(data, lane, age, server) -> response | None | False: a plain steer request answered whole"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "steering._answer",
                                    "A steering answer from the ranking cache, compiled.", -1, methods};

PyMODINIT_FUNC PyInit__answer(void) {
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {{&s_appliances, "appliances"}, {&s_parent, "parent"}, {&s_prefix, "prefix"},
                 {&s_json, "json"}, {&s_tier_slot, "tier_slot"},
                 {&s_bgp, "bgp"}, {&s_geoip, "geoip"}, {&s_none, "none"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].name);
        if (*names[i].slot == NULL)
            return NULL;
    }
    return PyModule_Create(&module);
}
