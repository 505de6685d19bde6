/* A strict reading of one HTTP/1.1 request head (RFC 9112), for steering/_answer.c's `respond`: is a read
 * from a connection exactly one plain GET of a path that starts with a given prefix, and nothing else?
 *
 * Why strict: what it accepts, the compiled answer answers without aiohttp's parser; what it refuses
 * goes to that parser unchanged. So it accepts only a small part of what a conforming server accepts,
 * and nothing that aiohttp would read differently (or at all):
 *   - the request line `GET <target> HTTP/1.1` (§3), the target in origin-form (starting with '/') made
 *     of RFC 3986 path and query characters (`%` followed by two hex digits);
 *   - fields `name: value` (§5): a name of tchars (RFC 9110 §5.6.2) right before the colon, a value of
 *     visible ASCII, spaces and tabs (no obs-text, no obs-fold: a line starting with white space);
 *   - exactly one Host (§3.2: a request without one, or with several, is a 400 to a server);
 *   - no field that announces a body or changes the connection: Content-Length, Transfer-Encoding,
 *     Upgrade, Expect, and Connection unless it is just `keep-alive` (HTTP/1.1's default);
 *   - every line ended by CRLF, the empty line last, nothing after it (no pipelined request), at most
 *     MAX_PLAIN_HEAD bytes and MAX_PLAIN_FIELDS fields.
 * Pure C, no Python: tests reach it through `respond`.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#define MAX_PLAIN_HEAD 8192
#define MAX_PLAIN_FIELDS 64

/* RFC 9110 §5.6.2 tchar */
static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 3986 pchar, '/' and '?' (origin-form, RFC 9112 §3.2.1), '%' checked by the caller */
static int is_target_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,;=:@/?%", c) != NULL);
}

static int is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int named(const char *name, size_t len, const char *want) {
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

/* 1 when [data, data+len) is exactly one plain GET head (*target set to its target), else 0. */
static int plain_request(const char *data, Py_ssize_t len, Span *target) {
    const char *p = data, *end = data + len;
    if (len > MAX_PLAIN_HEAD || len < 4 || memcmp(p, "GET ", 4) != 0)
        return 0;
    p += 4;
    const char *start = p;
    while (p < end && *p != ' ') {
        unsigned char c = (unsigned char)*p;
        if (!is_target_char(c) || (c == '%' && (end - p < 3 || !is_hex((unsigned char)p[1]) || !is_hex((unsigned char)p[2]))))
            return 0;
        p++;
    }
    if (p == start || *start != '/')
        return 0;
    *target = (Span){start, p - start};
    if (end - p < 11 || memcmp(p, " HTTP/1.1\r\n", 11) != 0)
        return 0;
    p += 11;
    int hosts = 0;
    for (int fields = 0; p < end; fields++) {
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
            return p + 2 == end && hosts == 1;
        if (fields == MAX_PLAIN_FIELDS)
            return 0;
        const char *name = p;
        while (p < end && is_tchar((unsigned char)*p))
            p++;
        if (p == name || p == end || *p != ':')
            return 0;
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *value = p;
        while (p < end && ((*p >= 0x21 && *p <= 0x7e) || *p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return 0;
        size_t value_len = (size_t)(p - value);
        while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
            value_len--;
        p += 2;
        if (named(name, name_len, "host"))
            hosts++;
        else if (named(name, name_len, "connection") ? !named(value, value_len, "keep-alive")
                 : named(name, name_len, "content-length") || named(name, name_len, "transfer-encoding") ||
                       named(name, name_len, "upgrade") || named(name, name_len, "expect"))
            return 0;
    }
    return 0;
}
