/* The edge's compiled request path: a GET or HEAD of a file the worker already has looked up (and
 * open, for a body), with no Range or one simple byte range, possibly conditional — the request
 * players send for every segment — is read and answered in C.
 *
 * Why C: on this stack (uvloop, httptools, os.sendfile) a server with no features spends ~11 µs of
 * CPU on a 1 KiB range request over TCP, nginx ~14 µs; the Python path of oca.http.handler and
 * oca.http.protocol added ~17 µs more (decision ~4.5, access-log line and metrics ~2, queueing and
 * send bookkeeping ~3, plus the interpreter's own overhead on each), so small ranges ran at half
 * nginx's rate (docs/edge.md, "Measured"). Here reading the head, the decision, the head, the send,
 * the metrics and the log line run in C, from the parser's callbacks.
 *
 * The rule, as in steering/_answer.c: answer only what is certain and decline everything else,
 * before sending or counting anything, so the Python path (oca.http.handler.handle) answers it —
 * or refuses it: every 4xx is its business. Answered here:
 *   - method GET or HEAD; HTTP/1.1 with exactly one Host, or HTTP/1.0; the client keeps the
 *     connection alive and the worker is not draining (a closing answer is left to Python);
 *   - an origin-form target whose path the worker has validated before (ctx.keys) and whose file
 *     is in the index view's cache; a body is sent only from a descriptor already open in the
 *     descriptor cache (a `--root` file is fstat'ed and must still match the index, as
 *     FdCache.acquire checks);
 *   - tokens not required, or a query whose token verified before (VerifiedTokens' memory), not
 *     expired, and when it is bound to a client prefix, from a client inside it;
 *   - no Content-Length, Transfer-Encoding, Upgrade, If-Match or If-Unmodified-Since field, and no
 *     If-Modified-Since without If-None-Match (which makes it ignored, RFC 9110 §13.2.2);
 *     If-None-Match is compared (weakly, `*`, a malformed list matching nothing) and a match is
 *     answered 304; If-Range in its entity-tag form is compared (strongly; a date is left to Python),
 *     and when it does not hold the Range is ignored (200, the whole file);
 *   - Range absent, or exactly the form `bytes=FIRST-[LAST]` (ranges._ONE_RANGE) and satisfiable;
 *   - the transport holds no unsent bytes (a body must never overtake them).
 * The bytes are those of handle() + EdgeProtocol: the same head (handler._ranged, with CORS as
 * handler._cors), sent with MSG_MORE before a body of at most flow.MORE_MAX bytes, then the body by
 * sendfile; counted as EdgeProtocol._record counts (responses, bytes, duration histogram, range
 * kind, hits by tier and by key) and logged in accesslog's line format (with its NOTE: not_modified,
 * if_range).
 * If the socket does not take everything at once (EAGAIN, an error, a short file), the response is
 * handed to the Python flow as it stands: conn._take_over(...), which finishes or fails it there.
 *
 *
 * Head(conn, shared, LimitExceeded, Request): oca.http.head.Head in C, httptools' callbacks for one
 * connection (conn: the EdgeProtocol; shared: its Shared). It bounds and collects the head as the
 * reference does, and on headers-complete answers as above when nothing is in flight or queued on
 * the connection and conn.lane() (the tuple oca.http.compiled.lane builds, indices L_* below)
 * exists; otherwise, or when the answer is declined, it queues a Request as conn.request_ready does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define MORE_MAX (16 * 1024) /* oca.http.flow.MORE_MAX */
#define HEAD_CAP 4096        /* larger heads (a long CORS origin) are left to Python */
#define LINE_CAP 2048

enum { L_KEYS, L_TOKENS, L_CACHE, L_OPEN, L_CORS, L_CLOCK, L_METRICS, L_RESPONSES, L_RANGES, L_HITS,
       L_BUCKETS, L_BOUNDS, L_SHARED, L_CTX, L_IDLE, L_LIMITS, L_SIZE };

static PyObject *s_fd, *s_client, *s_transport, *s_get_write_buffer_size, *s_draining, *s_tier, *s_path,
    *s_size, *s_mtime_ns, *s_head_tail, *s_kid, *s_move_to_end, *s_now, *s_date_line,
    *s_iso, *s_deadline, *s_deadline_kind, *s_idle, *s_bytes_sent, *s_duration_sum,
    *s_access, *s_write, *s_single, *s_none, *s_root, *s_v11,
    *s_v10, *s_key_hits, *s_compiled, *s_current, *s_header, *s_queue, *s_broken, *s_closed,
    *s_reading_paused, *s_parser, *s_get_method, *s_get_http_version, *s_should_keep_alive, *s_lane, *s_ctx,
    *s_etag, *s_ignored, *one, *empty_bytes;

typedef struct {
    const char *p;
    Py_ssize_t n;
} Span;

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Out;

static void put(Out *o, const char *s, Py_ssize_t n) {
    if (o->n + n <= o->cap)
        memcpy(o->p + o->n, s, n);
    o->n += n; /* past cap: the caller sees o->n > o->cap and declines */
}

static void puts_(Out *o, const char *s) { put(o, s, (Py_ssize_t)strlen(s)); }

static void put_ll(Out *o, long long v) {
    char tmp[24];
    put(o, tmp, snprintf(tmp, sizeof tmp, "%lld", v));
}

static int put_bytes(Out *o, PyObject *b) {
    if (!PyBytes_Check(b)) {
        PyErr_SetString(PyExc_TypeError, "expected bytes");
        return -1;
    }
    put(o, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
    return 0;
}

static int put_ascii(Out *o, PyObject *s) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (p == NULL)
        return -1;
    put(o, p, n);
    return 0;
}

typedef struct {
    PyObject *lane, *conn, *method, *url, *headers, *version; /* the request (borrowed) */
    int keep_alive, hosts;
    PyObject *known, *key, *path, *file, *kid, *tier, *date_line, *iso;
    Span range, agent, if_none_match, if_range;
    int status;
    const char *note;   /* the access log's NOTE ("-": plain) */
    PyObject *kind;     /* metrics' range kind (borrowed interned str), NULL: not counted (HEAD, 304) */
    long long first, count;
    double now, started;
} Answer;

/* response.log_field: printable ASCII as is, '"' and '\' escaped with '\', the rest as \xHH. */
static void put_log_field(Out *o, Span v) {
    static const char hex[] = "0123456789abcdef";
    if (v.n == 0) {
        put(o, "-", 1);
        return;
    }
    for (Py_ssize_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(o, e, 2);
        } else if (c >= 0x20 && c < 0x7f) {
            put(o, (const char *)&c, 1);
        } else {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            put(o, e, 4);
        }
    }
}

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int span_eq(const char *p, Py_ssize_t n, const char *lit) {
    return (size_t)n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* The header fields the answer depends on; 0 when one of them means "leave it to Python". */
static int scan_headers(PyObject *headers, Answer *a, Span *origin) {
    static const char *const decline[] = {"content-length", "transfer-encoding", "upgrade", "if-match",
                                          "if-unmodified-since", NULL};
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int modified_since = 0;
    if (!PyDict_Check(headers))
        return 0;
    while (PyDict_Next(headers, &pos, &k, &v)) {
        if (!PyBytes_Check(k) || !PyBytes_Check(v))
            return 0;
        const char *n = PyBytes_AS_STRING(k);
        Py_ssize_t len = PyBytes_GET_SIZE(k);
        Span value = {PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v)};
        if (span_eq(n, len, "range"))
            a->range = value;
        else if (span_eq(n, len, "origin"))
            *origin = value;
        else if (span_eq(n, len, "user-agent"))
            a->agent = value;
        else if (span_eq(n, len, "if-none-match"))
            a->if_none_match = value;
        else if (span_eq(n, len, "if-range"))
            a->if_range = value;
        else if (span_eq(n, len, "if-modified-since"))
            modified_since = 1;
        else if (len >= 7 && (n[0] == 'c' || n[0] == 't' || n[0] == 'u' || n[0] == 'i'))
            for (int i = 0; decline[i] != NULL; i++)
                if (span_eq(n, len, decline[i]))
                    return 0;
    }
    /* RFC 9110 §13.2.2: If-None-Match present makes If-Modified-Since ignored; alone, it is Python's */
    return !modified_since || a->if_none_match.p != NULL;
}

static int ows(char c) { return c == ' ' || c == '\t'; }

/* etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3) */
static int etagc(unsigned char c) { return c == 0x21 || (c >= 0x23 && c != 0x7f); }

/* One element of an entity-tag list from *pos (conditional.parse_etag_list's regex): 1 a tag, 0 the
 * end of the list, -1 malformed. */
static int next_tag(Span v, Py_ssize_t *pos, int *weak, Span *tag) {
    Py_ssize_t i = *pos;
    while (i < v.n && (ows(v.p[i]) || v.p[i] == ','))
        i++; /* empty list elements and OWS (RFC 9110 §5.6.1.2) */
    if (i >= v.n)
        return 0;
    *weak = i + 1 < v.n && v.p[i] == 'W' && v.p[i + 1] == '/';
    if (*weak)
        i += 2;
    if (i >= v.n || v.p[i] != '"')
        return -1;
    Py_ssize_t start = i++;
    while (i < v.n && etagc((unsigned char)v.p[i]))
        i++;
    if (i >= v.n || v.p[i] != '"')
        return -1;
    tag->p = v.p + start;
    tag->n = ++i - start;
    while (i < v.n && ows(v.p[i]))
        i++;
    if (i < v.n && v.p[i++] != ',')
        return -1;
    *pos = i;
    return 1;
}

static Span strip_ows(Span v) {
    while (v.n > 0 && ows(v.p[0]))
        v.p++, v.n--;
    while (v.n > 0 && ows(v.p[v.n - 1]))
        v.n--;
    return v;
}

/* conditional._matches(value, etag, weak_ok=True), If-None-Match's comparison: 1 match, 0 none or
 * malformed (a malformed list matches nothing). */
static int none_match(Span v, Span etag) {
    Span s = strip_ows(v);
    if (s.n == 1 && s.p[0] == '*')
        return 1;
    Py_ssize_t pos = 0;
    int weak, r, found = 0;
    Span tag;
    while ((r = next_tag(v, &pos, &weak, &tag)) == 1)
        found |= tag.n == etag.n && memcmp(tag.p, etag.p, etag.n) == 0;
    return r == 0 && found;
}

/* conditional.if_range_holds for the entity-tag form: 1 holds, 0 not, -1 a date (left to Python). */
static int if_range_holds(Span v, Span etag) {
    Span s = strip_ows(v);
    if (!(s.n > 0 && (s.p[0] == '"' || (s.n > 1 && s.p[0] == 'W' && s.p[1] == '/'))))
        return -1;
    Py_ssize_t pos = 0;
    int weak, r, tags = 0, equal = 0;
    Span tag;
    while ((r = next_tag(s, &pos, &weak, &tag)) == 1)
        equal = ++tags == 1 && !weak && tag.n == etag.n && memcmp(tag.p, etag.p, etag.n) == 0;
    return r == 0 && tags == 1 && equal;
}

/* tokens._client_in for a remembered prefix: the client address (conn.client) inside it. */
static int client_in(PyObject *conn, PyObject *packed) {
    if (!PyTuple_Check(packed) || PyTuple_GET_SIZE(packed) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(packed, 0))) {
        PyErr_SetString(PyExc_TypeError, "lane: a remembered prefix is (packed address, length)");
        return -1;
    }
    PyObject *net = PyTuple_GET_ITEM(packed, 0);
    long bits = PyLong_AsLong(PyTuple_GET_ITEM(packed, 1));
    Py_ssize_t n = PyBytes_GET_SIZE(net);
    if ((bits == -1 && PyErr_Occurred()) || (n != 4 && n != 16) || bits < 0 || bits > n * 8)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *client = PyObject_GetAttr(conn, s_client);
    if (client == NULL)
        return -1;
    const char *text = PyUnicode_Check(client) ? PyUnicode_AsUTF8(client) : NULL;
    unsigned char addr[16];
    const unsigned char *mine = addr;
    int ok = 0;
    if (text != NULL && strchr(text, ':') != NULL && inet_pton(AF_INET6, text, addr) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (n == 16)
            ok = 1;
        else if (memcmp(addr, mapped, 12) == 0) /* a dual-stack socket's IPv4 client */
            ok = 1, mine = addr + 12;
    } else if (text != NULL && n == 4 && inet_pton(AF_INET, text, addr) == 1)
        ok = 1;
    Py_DECREF(client);
    if (PyErr_Occurred())
        return -1;
    if (!ok)
        return 0;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(net);
    long whole = bits / 8, rest = bits % 8;
    if (memcmp(mine, p, whole) != 0)
        return 0;
    return rest == 0 || ((mine[whole] ^ p[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

static int digits(Span r, Py_ssize_t *i, long long *value) {
    Py_ssize_t start = *i;
    long long v = 0;
    while (*i < r.n && r.p[*i] >= '0' && r.p[*i] <= '9' && *i - start < 18)
        v = v * 10 + (r.p[(*i)++] - '0');
    *value = v;
    return (int)(*i - start);
}

/* ranges._ONE_RANGE: `bytes=([0-9]{1,18})-([0-9]{0,18})\Z`; *last = -1 when absent. */
static int one_range(Span r, long long *first, long long *last) {
    Py_ssize_t i = 6;
    if (r.n < 8 || memcmp(r.p, "bytes=", 6) != 0)
        return 0;
    if (digits(r, &i, first) == 0 || i >= r.n || r.p[i++] != '-')
        return 0;
    if (digits(r, &i, last) == 0)
        *last = -1;
    return i == r.n;
}

/* handler._cors, into `o`. */
static int put_cors(Out *o, PyObject *cors, Span origin) {
    static const char expose[] =
        "Access-Control-Expose-Headers: Content-Range, Content-Length, ETag, Accept-Ranges\r\n";
    if (cors == Py_None || origin.p == NULL)
        return 0;
    if (cors == Py_True) {
        puts_(o, "Access-Control-Allow-Origin: *\r\n");
        puts_(o, expose);
        return 0;
    }
    PyObject *b = PyBytes_FromStringAndSize(origin.p, origin.n);
    if (b == NULL)
        return -1;
    int allowed = PySet_Contains(cors, b);
    Py_DECREF(b);
    if (allowed < 0)
        return -1;
    if (allowed) {
        puts_(o, "Access-Control-Allow-Origin: ");
        put(o, origin.p, origin.n);
        puts_(o, "\r\nVary: Origin\r\n");
        puts_(o, expose);
    }
    return 0;
}

static long long attr_ll(PyObject *obj, PyObject *name) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    long long r = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return r;
}

/* dict[key] += n */
static int bump(PyObject *dict, PyObject *key, long long n) {
    PyObject *old = PyDict_GetItemWithError(dict, key);
    if (old == NULL && PyErr_Occurred())
        return -1;
    PyObject *v = PyLong_FromLongLong((old ? PyLong_AsLongLong(old) : 0) + n);
    if (v == NULL)
        return -1;
    int r = PyDict_SetItem(dict, key, v);
    Py_DECREF(v);
    return r;
}

/* obj.name += n (an int or a float attribute) */
static int bump_attr(PyObject *obj, PyObject *name, PyObject *n) {
    PyObject *old = PyObject_GetAttr(obj, name);
    if (old == NULL)
        return -1;
    PyObject *v = PyNumber_Add(old, n);
    Py_DECREF(old);
    if (v == NULL)
        return -1;
    int r = PyObject_SetAttr(obj, name, v);
    Py_DECREF(v);
    return r;
}


/* WorkerMetrics.observe: bisect_left over the bucket bounds. */
static int observe(Answer *a, double seconds) {
    PyObject *bounds = PyTuple_GET_ITEM(a->lane, L_BOUNDS), *buckets = PyTuple_GET_ITEM(a->lane, L_BUCKETS);
    Py_ssize_t i = 0, nb = PyTuple_GET_SIZE(bounds);
    while (i < nb && PyFloat_AsDouble(PyTuple_GET_ITEM(bounds, i)) < seconds)
        i++;
    if (!PyList_Check(buckets) || i >= PyList_GET_SIZE(buckets)) {
        PyErr_SetString(PyExc_ValueError, "lane: buckets do not match the bounds");
        return -1;
    }
    PyObject *v = PyLong_FromLongLong(PyLong_AsLongLong(PyList_GET_ITEM(buckets, i)) + 1);
    if (v == NULL)
        return -1;
    PyList_SetItem(buckets, i, v); /* steals v */
    PyObject *d = PyFloat_FromDouble(seconds);
    if (d == NULL)
        return -1;
    int r = bump_attr(PyTuple_GET_ITEM(a->lane, L_METRICS), s_duration_sum, d);
    Py_DECREF(d);
    return r;
}

/* The access-log line (oca.accesslog's format), handed to AccessLog.write. */
static int log_line(Answer *a, double seconds) {
    PyObject *access = PyObject_GetAttr(PyTuple_GET_ITEM(a->lane, L_SHARED), s_access);
    if (access == NULL)
        return -1;
    if (access == Py_None) {
        Py_DECREF(access);
        return 0;
    }
    char stack[LINE_CAP];
    /* fixed fields (time, client, method, status, sizes, tier, kid) fit in 512 bytes */
    Py_ssize_t need = 512 + PyUnicode_GET_LENGTH(a->path) + 4 * (a->range.n + a->agent.n);
    Out o = {need <= LINE_CAP ? stack : PyMem_Malloc(need), 0, need <= LINE_CAP ? LINE_CAP : need};
    PyObject *client = PyObject_GetAttr(a->conn, s_client);
    char *dur = PyOS_double_to_string(seconds, 'f', 6, 0, NULL);
    int r = -1;
    if (o.p == NULL)
        PyErr_NoMemory();
    if (client == NULL || dur == NULL || o.p == NULL)
        goto done;
    if (put_ascii(&o, a->iso) < 0)
        goto done;
    put(&o, " ", 1);
    if (put_ascii(&o, client) < 0)
        goto done;
    put(&o, " ", 1);
    put(&o, PyBytes_AS_STRING(a->method), PyBytes_GET_SIZE(a->method));
    put(&o, " ", 1);
    if (put_ascii(&o, a->path) < 0)
        goto done;
    put(&o, " ", 1);
    put_ll(&o, a->status);
    put(&o, " ", 1);
    put_ll(&o, a->count);
    put(&o, " \"", 2);
    put_log_field(&o, a->range);
    put(&o, "\" ", 2);
    puts_(&o, dur);
    put(&o, " ", 1);
    if (put_ascii(&o, a->tier) < 0)
        goto done;
    put(&o, " ", 1);
    if (a->kid == Py_None)
        put(&o, "-", 1);
    else if (put_ascii(&o, a->kid) < 0)
        goto done;
    put(&o, " \"", 2);
    put_log_field(&o, a->agent);
    put(&o, "\" ", 2);
    puts_(&o, a->note);
    put(&o, "\n", 1);
    if (o.n > o.cap) {
        PyErr_SetString(PyExc_RuntimeError, "access-log line longer than its bound");
        goto done;
    }
    PyObject *line = PyUnicode_DecodeLatin1(o.p, o.n, NULL);
    PyObject *x = line ? PyObject_CallMethodOneArg(access, s_write, line) : NULL; /* AccessLog.write */
    r = x == NULL ? -1 : 0;
    Py_XDECREF(x);
    Py_XDECREF(line);
done:
    if (o.p != stack && o.p != NULL)
        PyMem_Free(o.p);
    PyMem_Free(dur);
    Py_XDECREF(client);
    Py_DECREF(access);
    return r;
}

/* EdgeProtocol._record for a complete answer, then _go_idle. */
static int record(Answer *a) {
    PyObject *lane = a->lane, *m = PyTuple_GET_ITEM(lane, L_METRICS);
    double seconds = monotonic_now() - a->started;
    PyObject *status = PyLong_FromLong(a->status), *sent = PyLong_FromLongLong(a->count);
    int r = status == NULL || sent == NULL || bump(PyTuple_GET_ITEM(lane, L_RESPONSES), status, 1) < 0 ||
            bump_attr(m, s_bytes_sent, sent) < 0 || bump_attr(m, s_compiled, one) < 0 || observe(a, seconds) < 0 ||
            (a->kind != NULL && bump(PyTuple_GET_ITEM(lane, L_RANGES), a->kind, 1) < 0);
    Py_XDECREF(status);
    Py_XDECREF(sent);
    if (r)
        return -1;
    if (a->status == 200 || a->status == 206) {
        PyObject *key_hits = PyObject_GetAttr(PyTuple_GET_ITEM(lane, L_SHARED), s_key_hits); /* swapped when flushed */
        r = key_hits == NULL || bump(PyTuple_GET_ITEM(lane, L_HITS), a->tier, 1) < 0 || bump(key_hits, a->key, 1) < 0;
        Py_XDECREF(key_hits);
        if (r)
            return -1;
    }
    if (log_line(a, seconds) < 0)
        return -1;
    PyObject *deadline = PyFloat_FromDouble(monotonic_now() + PyFloat_AsDouble(PyTuple_GET_ITEM(lane, L_IDLE)));
    if (deadline == NULL)
        return -1;
    r = PyObject_SetAttr(a->conn, s_deadline, deadline);
    Py_DECREF(deadline);
    if (r < 0 || PyObject_SetAttr(a->conn, s_deadline_kind, s_idle) < 0)
        return -1;
    return 0;
}

/* The socket took part of the answer: conn._take_over continues it in the Python flow. */
static int take_over(Answer *a, PyObject *head, Py_ssize_t head_sent, long long body_sent) {
    PyObject *x = PyObject_CallMethod(
        a->conn, "_take_over", "OOOONidiOOLLOOOnLs", a->method, a->url, a->headers, a->version,
        PyBool_FromLong(a->keep_alive), a->hosts, a->started, a->status, head, a->file, a->first, a->count,
        a->kind != NULL ? a->kind : Py_None, a->kid, a->path, head_sent, body_sent, a->note);
    Py_XDECREF(x);
    return x == NULL ? -1 : 0;
}

/* Send the head and the body; 0 done, 1 handed over, -1 error. */
static int send_answer(Answer *a, int sock, int file_fd, const char *head, Py_ssize_t head_len) {
    int flags = MSG_NOSIGNAL | (a->count > 0 && a->count <= MORE_MAX ? MSG_MORE : 0);
    ssize_t n = send(sock, head, head_len, flags);
    Py_ssize_t head_sent = n < 0 ? 0 : n;
    off_t offset = a->first;
    long long left = a->count;
    if (head_sent == head_len) {
        while (left > 0) {
            n = sendfile(sock, file_fd, &offset, left);
            if (n > 0)
                left -= n;
            else if (!(n < 0 && errno == EINTR))
                break;
        }
        if (left == 0)
            return record(a) < 0 ? -1 : 0;
    }
    PyObject *h = PyBytes_FromStringAndSize(head, head_len);
    if (h == NULL)
        return -1;
    int r = take_over(a, h, head_sent, a->count - left);
    Py_DECREF(h);
    return r < 0 ? -1 : 1;
}

/* The clock's time and lines (response.Clock.now(), which rebuilds the lines once a second). */
static int read_clock(Answer *a, PyObject *clock) {
    PyObject *t = PyObject_CallMethodNoArgs(clock, s_now);
    if (t == NULL)
        return -1;
    a->now = PyFloat_AsDouble(t);
    Py_DECREF(t);
    if (PyErr_Occurred())
        return -1;
    a->date_line = PyObject_GetAttr(clock, s_date_line);
    a->iso = a->date_line ? PyObject_GetAttr(clock, s_iso) : NULL;
    return a->iso == NULL ? -1 : 0;
}

/* ctx.verified's memory for (path, query): the key id when the token is known good now for this
 * client, Py_None when it must be left to Python (not remembered, expired, another client's); NULL on
 * error. */
static PyObject *known_token(PyObject *memory, PyObject *conn, PyObject *path, Span query, double now) {
    PyObject *q = PyUnicode_DecodeLatin1(query.p, query.n, NULL);
    if (q == NULL)
        return NULL;
    PyObject *k = PyTuple_Pack(2, path, q);
    Py_DECREF(q);
    if (k == NULL)
        return NULL;
    PyObject *hit = PyDict_GetItemWithError(memory, k); /* (Ok, exp, net, (packed, length) | None) */
    Py_DECREF(k);
    if (hit == NULL)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 4) {
        PyErr_SetString(PyExc_TypeError, "lane: a remembered token is (ok, exp, net, packed)");
        return NULL;
    }
    long long exp = PyLong_AsLongLong(PyTuple_GET_ITEM(hit, 1));
    if (exp == -1 && PyErr_Occurred())
        return NULL;
    if (now > (double)exp)
        return Py_NewRef(Py_None);
    PyObject *packed = PyTuple_GET_ITEM(hit, 3);
    if (packed != Py_None) {
        int inside = client_in(conn, packed);
        if (inside <= 0)
            return inside < 0 ? NULL : Py_NewRef(Py_None);
    }
    return PyObject_GetAttr(PyTuple_GET_ITEM(hit, 0), s_kid);
}

/* The file's open descriptor from FdCache (moved to its LRU end), or -1 to decline, -2 on error. */
static int open_fd(PyObject *lane, Answer *a, long long size) {
    PyObject *of = PyDict_GetItemWithError(PyTuple_GET_ITEM(lane, L_OPEN), a->key);
    if (of == NULL)
        return PyErr_Occurred() ? -2 : -1;
    PyObject *of_path = PyObject_GetAttr(of, s_path), *f_path = PyObject_GetAttr(a->file, s_path);
    int same = of_path && f_path ? PyObject_RichCompareBool(of_path, f_path, Py_EQ) : -1;
    Py_XDECREF(of_path);
    Py_XDECREF(f_path);
    long long fd = same > 0 ? attr_ll(of, s_fd) : -1;
    if (same < 0 || (fd == -1 && PyErr_Occurred()))
        return -2;
    if (!same)
        return -1;
    if (PyUnicode_Check(a->tier) && PyUnicode_Compare(a->tier, s_root) == 0) {
        struct stat st; /* FdCache.acquire: a plain directory can be edited in place */
        long long mtime_ns = attr_ll(a->file, s_mtime_ns);
        if (mtime_ns == -1 && PyErr_Occurred())
            return -2;
        if (fstat((int)fd, &st) != 0 || st.st_size != size ||
            (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != mtime_ns)
            return -1;
    }
    PyObject *x = PyObject_CallMethodOneArg(PyTuple_GET_ITEM(lane, L_OPEN), s_move_to_end, a->key);
    if (x == NULL)
        return -2;
    Py_DECREF(x);
    return (int)fd;
}

/* The head's last lines: CORS (handler._cors), Connection (handler._conn), the blank line. */
static int finish_head(Answer *a, Out *head, int v11, Span origin) {
    if (put_cors(head, PyTuple_GET_ITEM(a->lane, L_CORS), origin) < 0)
        return -1;
    if (!v11)
        puts_(head, "Connection: keep-alive\r\n");
    puts_(head, "\r\n");
    return head->n <= head->cap;
}

/* handler._serve and _ranged from the preconditions on (RFC 9110 §13.2.2, §14): the status, the head
 * into `head`, the body's range; 1 answer, 0 decline, -1 error. */
static int respond(Answer *a, Out *head, int *file_fd, long long size, Span etag, int get, int v11, Span origin) {
    a->status = 200;
    a->first = 0;
    a->count = size;
    a->note = "-";
    a->kind = get ? s_none : NULL;
    if (a->if_none_match.p != NULL && none_match(a->if_none_match, etag)) {
        /* RFC 9110 §15.4.5: a 304 carries the validators a 200 would have, and no content */
        a->status = 304;
        a->count = 0;
        a->kind = NULL;
        a->note = "not_modified";
        puts_(head, "HTTP/1.1 304 Not Modified\r\n");
        if (put_bytes(head, a->date_line) < 0)
            return -1;
        puts_(head, "Server: oca\r\nETag: ");
        put(head, etag.p, etag.n);
        puts_(head, "\r\n");
        return finish_head(a, head, v11, origin);
    }
    if (get && a->range.p != NULL) {
        int holds = a->if_range.p == NULL ? 1 : if_range_holds(a->if_range, etag);
        long long first, last;
        if (holds < 0)
            return 0; /* an HTTP-date: conditional.if_range_holds */
        if (!holds) {
            a->kind = s_ignored; /* ranges.Ignored("if_range"): the whole file */
            a->note = "if_range";
        } else if (!one_range(a->range, &first, &last) || (last >= 0 && last < first) || first >= size) {
            return 0; /* other forms, Ignored("syntax"), Unsatisfiable: ranges.plan_range */
        } else {
            a->status = 206;
            a->kind = s_single;
            a->first = first;
            a->count = (last < 0 || last >= size ? size - 1 : last) - first + 1;
        }
    }
    /* handler._ranged */
    puts_(head, a->status == 200 ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 206 Partial Content\r\n");
    if (put_bytes(head, a->date_line) < 0)
        return -1;
    puts_(head, "Server: oca\r\nContent-Length: ");
    put_ll(head, a->count);
    puts_(head, "\r\n");
    if (a->status == 206) {
        puts_(head, "Content-Range: bytes ");
        put_ll(head, a->first);
        put(head, "-", 1);
        put_ll(head, a->first + a->count - 1);
        put(head, "/", 1);
        put_ll(head, size);
        puts_(head, "\r\n");
    }
    PyObject *tail = PyObject_GetAttr(a->file, s_head_tail);
    if (tail == NULL)
        return -1;
    int r = put_bytes(head, tail);
    Py_DECREF(tail);
    if (r < 0)
        return -1;
    if (!get)
        a->count = 0; /* HEAD: the head of a 200, no body */
    if (a->count > 0) { /* only a body needs the descriptor (EdgeProtocol._start acquires it then) */
        *file_fd = open_fd(a->lane, a, size);
        if (*file_fd < 0)
            return *file_fd == -1 ? 0 : -1;
    }
    return finish_head(a, head, v11, origin);
}

static int write_buffer_empty(PyObject *conn) {
    PyObject *t = PyObject_GetAttr(conn, s_transport);
    if (t == NULL)
        return -1;
    PyObject *n = PyObject_CallMethodNoArgs(t, s_get_write_buffer_size);
    Py_DECREF(t);
    if (n == NULL)
        return -1;
    long long v = PyLong_AsLongLong(n);
    Py_DECREF(n);
    return v == -1 && PyErr_Occurred() ? -1 : v == 0;
}

/* Everything up to the send; 1 answer, 0 decline, -1 error. Fills `a` and the head. */
static int decide(Answer *a, Out *head, int *file_fd) {
    PyObject *lane = a->lane, *url = a->url, *headers = a->headers, *version = a->version;
    int keep_alive = a->keep_alive, hosts = a->hosts;
    Span origin = {NULL, 0};
    int v11 = PyUnicode_Check(version) && PyUnicode_Compare(version, s_v11) == 0;
    if (!keep_alive || (!v11 && !(PyUnicode_Check(version) && PyUnicode_Compare(version, s_v10) == 0)) ||
        (v11 && hosts != 1))
        return 0;
    int get = PyBytes_GET_SIZE(a->method) == 3 && memcmp(PyBytes_AS_STRING(a->method), "GET", 3) == 0;
    if (!get && !(PyBytes_GET_SIZE(a->method) == 4 && memcmp(PyBytes_AS_STRING(a->method), "HEAD", 4) == 0))
        return 0;
    if (!scan_headers(headers, a, &origin))
        return 0;
    const char *u = PyBytes_AS_STRING(url), *q = memchr(u, '?', PyBytes_GET_SIZE(url));
    if (PyBytes_GET_SIZE(url) == 0 || u[0] != '/')
        return 0; /* absolute-form and the rest: handler.handle */
    PyObject *draining = PyObject_GetAttr(PyTuple_GET_ITEM(lane, L_CTX), s_draining);
    if (draining == NULL)
        return -1;
    int drain = PyObject_IsTrue(draining);
    Py_DECREF(draining);
    if (drain)
        return drain < 0 ? -1 : 0;
    int empty = write_buffer_empty(a->conn);
    if (empty <= 0)
        return empty;
    PyObject *raw_path = q ? PyBytes_FromStringAndSize(u, q - u) : Py_NewRef(url);
    if (raw_path == NULL)
        return -1;
    PyObject *known = PyDict_GetItemWithError(PyTuple_GET_ITEM(lane, L_KEYS), raw_path); /* (key, path) */
    Py_DECREF(raw_path);
    if (known == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(known) || PyTuple_GET_SIZE(known) != 2) {
        PyErr_SetString(PyExc_TypeError, "lane: ctx.keys values are (key, path)");
        return -1;
    }
    a->known = Py_NewRef(known); /* the Python calls below may clear ctx.keys */
    a->key = PyTuple_GET_ITEM(known, 0);
    a->path = PyTuple_GET_ITEM(known, 1);
    if (read_clock(a, PyTuple_GET_ITEM(lane, L_CLOCK)) < 0)
        return -1;
    PyObject *tokens = PyTuple_GET_ITEM(lane, L_TOKENS);
    if (tokens == Py_None) {
        a->kid = Py_NewRef(Py_None);
    } else {
        Span query = {q ? q + 1 : "", q ? PyBytes_GET_SIZE(url) - (q + 1 - u) : 0};
        a->kid = known_token(tokens, a->conn, a->path, query, a->now);
        if (a->kid == NULL)
            return -1;
        if (a->kid == Py_None)
            return 0;
    }
    a->file = PyDict_GetItemWithError(PyTuple_GET_ITEM(lane, L_CACHE), a->key);
    if (a->file == NULL)
        return PyErr_Occurred() ? -1 : 0;
    Py_INCREF(a->file);
    a->tier = PyObject_GetAttr(a->file, s_tier);
    long long size = a->tier ? attr_ll(a->file, s_size) : -1;
    if (size < 0)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *etag_obj = PyObject_GetAttr(a->file, s_etag);
    Span etag = {NULL, 0};
    if (etag_obj == NULL || (etag.p = PyUnicode_AsUTF8AndSize(etag_obj, &etag.n)) == NULL) {
        Py_XDECREF(etag_obj);
        return -1;
    }
    int r = respond(a, head, file_fd, size, etag, get, v11, origin);
    Py_DECREF(etag_obj);
    return r;
}

/* The whole compiled answer to one request: 1 answered (or handed over), 0 declined, -1 error. */
static int answer_request(Answer *a) {
    if (!PyTuple_Check(a->lane) || PyTuple_GET_SIZE(a->lane) != L_SIZE || !PyBytes_Check(a->method) ||
        !PyBytes_Check(a->url)) {
        PyErr_SetString(PyExc_TypeError, "answer: a lane of oca.http.compiled.lane, bytes method and url");
        return -1;
    }
    long long sock = attr_ll(a->conn, s_fd);
    if (sock == -1 && PyErr_Occurred())
        return -1;
    char buf[HEAD_CAP];
    Out head = {buf, 0, HEAD_CAP};
    int file_fd = -1;
    int r = decide(a, &head, &file_fd);
    if (r == 1)
        r = send_answer(a, (int)sock, file_fd, head.p, head.n) < 0 ? -1 : 1;
    Py_XDECREF(a->kid);
    Py_XDECREF(a->known);
    Py_XDECREF(a->file);
    Py_XDECREF(a->tier);
    Py_XDECREF(a->date_line);
    Py_XDECREF(a->iso);
    return r;
}

/* ---- Head: httptools' callbacks for one connection, oca.http.head.Head compiled ---------------- */

typedef struct {
    PyObject_HEAD PyObject *conn, *shared, *limit_exceeded, *request_type;
    PyObject *url, *headers; /* the head being read; NULL between heads */
    Py_ssize_t hbytes, hcount, hosts, partial;
    Py_ssize_t max_request_line, max_header_bytes, max_headers; /* the lane's, at the head's start */
    char in_head;
    double head_started;
} Head;

static int head_traverse(Head *h, visitproc visit, void *arg) {
    Py_VISIT(h->conn);
    Py_VISIT(h->shared);
    Py_VISIT(h->limit_exceeded);
    Py_VISIT(h->request_type);
    Py_VISIT(h->url);
    Py_VISIT(h->headers);
    return 0;
}

static int head_clear(Head *h) {
    Py_CLEAR(h->conn);
    Py_CLEAR(h->shared);
    Py_CLEAR(h->limit_exceeded);
    Py_CLEAR(h->request_type);
    Py_CLEAR(h->url);
    Py_CLEAR(h->headers);
    return 0;
}

static void head_dealloc(Head *h) {
    PyObject_GC_UnTrack(h);
    head_clear(h);
    Py_TYPE(h)->tp_free((PyObject *)h);
}

static int head_init(Head *h, PyObject *args, PyObject *kw) {
    PyObject *conn, *shared, *limit_exceeded, *request_type;
    if (!PyArg_ParseTuple(args, "OOOO:Head", &conn, &shared, &limit_exceeded, &request_type))
        return -1;
    Py_XSETREF(h->conn, Py_NewRef(conn));
    Py_XSETREF(h->shared, Py_NewRef(shared));
    Py_XSETREF(h->limit_exceeded, Py_NewRef(limit_exceeded));
    Py_XSETREF(h->request_type, Py_NewRef(request_type));
    return 0;
}

/* conn.lane(): shared.ctx.lane, built by the protocol when the configuration is new. */
static PyObject *lane_of(Head *h) {
    PyObject *ctx = PyObject_GetAttr(h->shared, s_ctx);
    PyObject *lane = ctx ? PyObject_GetAttr(ctx, s_lane) : NULL;
    Py_XDECREF(ctx);
    if (lane == Py_None) {
        Py_DECREF(lane);
        lane = PyObject_CallMethodNoArgs(h->conn, s_lane);
    }
    if (lane != NULL && (!PyTuple_Check(lane) || PyTuple_GET_SIZE(lane) != L_SIZE)) {
        Py_DECREF(lane);
        PyErr_SetString(PyExc_TypeError, "Head: the connection has no compiled lane");
        return NULL;
    }
    return lane;
}

static PyObject *limit(Head *h, int status, const char *note) {
    PyObject *e = PyObject_CallFunction(h->limit_exceeded, "is", status, note);
    if (e != NULL) {
        PyErr_SetObject(h->limit_exceeded, e);
        Py_DECREF(e);
    }
    return NULL;
}

static PyObject *head_on_message_begin(Head *h, PyObject *unused) {
    PyObject *lane = lane_of(h);
    if (lane == NULL)
        return NULL;
    PyObject *limits = PyTuple_GET_ITEM(lane, L_LIMITS); /* (request line, header bytes, headers, timeout) */
    if (!PyTuple_Check(limits) || PyTuple_GET_SIZE(limits) != 4) {
        Py_DECREF(lane);
        PyErr_SetString(PyExc_TypeError, "lane: limits are (max_request_line, max_header_bytes, max_headers, "
                                         "header_timeout)");
        return NULL;
    }
    h->max_request_line = PyLong_AsSsize_t(PyTuple_GET_ITEM(limits, 0));
    h->max_header_bytes = PyLong_AsSsize_t(PyTuple_GET_ITEM(limits, 1));
    h->max_headers = PyLong_AsSsize_t(PyTuple_GET_ITEM(limits, 2));
    double timeout = PyFloat_AsDouble(PyTuple_GET_ITEM(limits, 3));
    Py_DECREF(lane);
    if (PyErr_Occurred())
        return NULL;
    Py_XSETREF(h->url, Py_NewRef(empty_bytes));
    Py_XSETREF(h->headers, PyDict_New());
    if (h->headers == NULL)
        return NULL;
    h->hbytes = h->hcount = h->hosts = h->partial = 0;
    h->in_head = 1;
    h->head_started = monotonic_now();
    PyObject *current = PyObject_GetAttr(h->conn, s_current);
    if (current == NULL)
        return NULL;
    int idle = current == Py_None;
    Py_DECREF(current);
    if (idle) {
        PyObject *deadline = PyFloat_FromDouble(h->head_started + timeout);
        int r = deadline == NULL || PyObject_SetAttr(h->conn, s_deadline, deadline) < 0 ||
                PyObject_SetAttr(h->conn, s_deadline_kind, s_header) < 0;
        Py_XDECREF(deadline);
        if (r)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *head_on_url(Head *h, PyObject *url) {
    if (h->url == NULL || !PyBytes_Check(url)) {
        PyErr_SetString(PyExc_RuntimeError, "Head.on_url outside a head");
        return NULL;
    }
    if (PyBytes_GET_SIZE(h->url) == 0)
        Py_SETREF(h->url, Py_NewRef(url));
    else {
        PyBytes_Concat(&h->url, url);
        if (h->url == NULL)
            return NULL;
    }
    if (PyBytes_GET_SIZE(h->url) > h->max_request_line)
        return limit(h, 414, "request_target_too_long"); /* RFC 9112 §3 */
    Py_RETURN_NONE;
}

static PyObject *head_on_header(Head *h, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || h->headers == NULL) {
        PyErr_SetString(PyExc_TypeError, "Head.on_header(name, value) inside a head");
        return NULL;
    }
    PyObject *name = args[0], *value = args[1];
    Py_ssize_t n = PyBytes_GET_SIZE(name);
    h->hcount++;
    h->hbytes += n + PyBytes_GET_SIZE(value) + 4;
    if (h->hcount > h->max_headers || h->hbytes > h->max_header_bytes)
        return limit(h, 431, "header_fields_too_large"); /* RFC 6585 §5 */
    const char *p = PyBytes_AS_STRING(name);
    Py_ssize_t upper = 0;
    while (upper < n && !(p[upper] >= 'A' && p[upper] <= 'Z'))
        upper++;
    PyObject *lower; /* bytes.lower(): ASCII letters only */
    if (upper == n)
        lower = Py_NewRef(name);
    else {
        lower = PyBytes_FromStringAndSize(p, n);
        if (lower == NULL)
            return NULL;
        char *q = PyBytes_AS_STRING(lower);
        for (Py_ssize_t i = upper; i < n; i++)
            if (q[i] >= 'A' && q[i] <= 'Z')
                q[i] += 'a' - 'A';
    }
    if (n == 4 && memcmp(PyBytes_AS_STRING(lower), "host", 4) == 0)
        h->hosts++;
    PyObject *old = PyDict_GetItemWithError(h->headers, lower), *joined = NULL;
    int r = -1;
    if (old == NULL && PyErr_Occurred())
        goto done;
    if (old == NULL)
        joined = Py_NewRef(value);
    else { /* RFC 9110 §5.3: repeated fields are one comma-separated list */
        Py_ssize_t a = PyBytes_GET_SIZE(old), b = PyBytes_GET_SIZE(value);
        joined = PyBytes_FromStringAndSize(NULL, a + 2 + b);
        if (joined == NULL)
            goto done;
        memcpy(PyBytes_AS_STRING(joined), PyBytes_AS_STRING(old), a);
        memcpy(PyBytes_AS_STRING(joined) + a, ", ", 2);
        memcpy(PyBytes_AS_STRING(joined) + a + 2, PyBytes_AS_STRING(value), b);
    }
    r = PyDict_SetItem(h->headers, lower, joined);
done:
    Py_DECREF(lower);
    Py_XDECREF(joined);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int attr_true(PyObject *obj, PyObject *name) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

/* EdgeProtocol.request_ready, compiled: answer here when the connection is idle, else queue. */
static int request_ready(Head *h, Answer *a) {
    PyObject *lane = lane_of(h);
    if (lane == NULL)
        return -1;
    a->lane = lane;
    int r = 0, idle = 1;
    PyObject *current = PyObject_GetAttr(h->conn, s_current), *queue = PyObject_GetAttr(h->conn, s_queue);
    if (current == NULL || queue == NULL || !PyList_Check(queue))
        r = -1;
    else if (current != Py_None || PyList_GET_SIZE(queue) > 0)
        idle = 0;
    else {
        PyObject *const flags[] = {s_broken, s_closed, s_reading_paused};
        for (int i = 0; i < 3 && idle && r == 0; i++) {
            int v = attr_true(h->conn, flags[i]);
            if (v < 0)
                r = -1;
            else if (v)
                idle = 0;
        }
    }
    if (r == 0 && idle)
        r = answer_request(a);
    if (r == 0) { /* declined: a Request for the Python path, in arrival order */
        PyObject *client = PyObject_GetAttr(h->conn, s_client);
        PyObject *req = client == NULL ? NULL : PyObject_CallFunction(
            h->request_type, "OOOONOdn", a->method, a->url, a->headers, a->version,
            PyBool_FromLong(a->keep_alive), client, a->started, (Py_ssize_t)a->hosts);
        r = req == NULL || PyList_Append(queue, req) < 0 ? -1 : 0;
        Py_XDECREF(req);
        Py_XDECREF(client);
    }
    Py_XDECREF(current);
    Py_XDECREF(queue);
    Py_DECREF(lane);
    return r;
}

static PyObject *head_on_headers_complete(Head *h, PyObject *unused) {
    if (h->url == NULL || h->headers == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Head.on_headers_complete outside a head");
        return NULL;
    }
    h->in_head = 0;
    h->partial = 0;
    PyObject *url = h->url, *headers = h->headers; /* the Request owns them; an idle connection keeps nothing */
    h->url = h->headers = NULL;
    PyObject *parser = PyObject_GetAttr(h->conn, s_parser), *method = NULL, *version = NULL, *keep = NULL;
    int r = -1;
    if (parser != NULL && (method = PyObject_CallMethodNoArgs(parser, s_get_method)) != NULL &&
        (version = PyObject_CallMethodNoArgs(parser, s_get_http_version)) != NULL &&
        (keep = PyObject_CallMethodNoArgs(parser, s_should_keep_alive)) != NULL) {
        Answer a = {.conn = h->conn, .method = method, .url = url, .headers = headers, .version = version,
                    .keep_alive = PyObject_IsTrue(keep), .hosts = (int)h->hosts, .started = monotonic_now()};
        r = a.keep_alive < 0 ? -1 : request_ready(h, &a);
    }
    Py_XDECREF(parser);
    Py_XDECREF(method);
    Py_XDECREF(version);
    Py_XDECREF(keep);
    Py_DECREF(url);
    Py_DECREF(headers);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef head_methods[] = {
    {"on_message_begin", (PyCFunction)head_on_message_begin, METH_NOARGS, NULL},
    {"on_url", (PyCFunction)head_on_url, METH_O, NULL},
    {"on_header", (PyCFunction)(void (*)(void))head_on_header, METH_FASTCALL, NULL},
    {"on_headers_complete", (PyCFunction)head_on_headers_complete, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef head_members[] = {
    {"in_head", T_BOOL, offsetof(Head, in_head), 0, "bytes of a head arrived, its end not yet"},
    {"partial", T_PYSSIZET, offsetof(Head, partial), 0, "bytes of the unfinished head (the protocol counts)"},
    {"head_started", T_DOUBLE, offsetof(Head, head_started), 0, "monotonic time of the head's first byte"},
    {"hosts", T_PYSSIZET, offsetof(Head, hosts), READONLY, "Host fields in this head"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject HeadType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "oca.http._serve.Head",
    .tp_doc = "Head(conn, shared, LimitExceeded, Request): httptools' callbacks for one connection "
              "(oca.http.head.Head, compiled; oca/http/_serve.c)",
    .tp_basicsize = sizeof(Head),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)head_init,
    .tp_dealloc = (destructor)head_dealloc,
    .tp_traverse = (traverseproc)head_traverse,
    .tp_clear = (inquiry)head_clear,
    .tp_methods = head_methods,
    .tp_members = head_members,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "oca.http._serve",
                                    "The edge's compiled request path.", -1, NULL};

PyMODINIT_FUNC PyInit__serve(void) {
    struct {
        PyObject **slot;
        const char *name;
    } names[] = {{&s_fd, "fd"}, {&s_client, "client"}, {&s_transport, "transport"},
                 {&s_get_write_buffer_size, "get_write_buffer_size"}, {&s_draining, "draining"},
                 {&s_tier, "tier"}, {&s_path, "path"}, {&s_size, "size"}, {&s_mtime_ns, "mtime_ns"},
                 {&s_head_tail, "head_tail"}, {&s_kid, "kid"}, {&s_move_to_end, "move_to_end"},
                 {&s_now, "now"}, {&s_date_line, "date_line"},
                 {&s_iso, "iso"}, {&s_deadline, "deadline"}, {&s_deadline_kind, "deadline_kind"},
                 {&s_idle, "idle"}, {&s_bytes_sent, "bytes_sent"},
                 {&s_duration_sum, "duration_sum"}, {&s_access, "access"}, {&s_write, "write"},
                 {&s_single, "single"}, {&s_none, "none"}, {&s_root, "root"}, {&s_v11, "1.1"},
                 {&s_v10, "1.0"}, {&s_key_hits, "key_hits"}, {&s_compiled, "compiled"},
                 {&s_current, "current"}, {&s_header, "header"}, {&s_queue, "queue"}, {&s_broken, "broken"},
                 {&s_closed, "closed"}, {&s_reading_paused, "reading_paused"}, {&s_parser, "parser"},
                 {&s_get_method, "get_method"}, {&s_get_http_version, "get_http_version"},
                 {&s_should_keep_alive, "should_keep_alive"}, {&s_lane, "lane"}, {&s_ctx, "ctx"},
                 {&s_etag, "etag"}, {&s_ignored, "ignored"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return NULL;
    if ((empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL || (one = PyLong_FromLong(1)) == NULL)
        return NULL;
    if (PyType_Ready(&HeadType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL || PyModule_AddObjectRef(m, "Head", (PyObject *)&HeadType) < 0) {
        Py_XDECREF(m);
        return NULL;
    }
    return m;
}
