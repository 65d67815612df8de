/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/* pc_hint.c: the owner of a request, guessed from its raw head.
 *
 * httpd picks a request's vhost from the connection's local address and
 * port and, for a request in origin form, the Host header alone
 * (vhost.c: update_server_from_aliases).  So once httpd has decided for
 * one Host on one kind of connection, the same Host on the same kind of
 * connection gets the same vhost for the rest of this generation.  We
 * keep those decisions, per worker thread (no locks), and answer from
 * them; we never match names ourselves.
 *
 * The scanner is deliberately narrow: whatever httpd might answer with
 * an error before it looks at the Host (a bad request line, a folded or
 * malformed header line) is left to httpd's own path, so that such
 * errors go where they went before. */

#include "pc_hint.h"
#include "apr_lib.h"

#include <string.h>
#include <strings.h>

/* A miss only means httpd's own path.  Searched whole: a connection that
 * alternates among a few Hosts must find every one of them, which a
 * hashed table cannot promise (two Hosts in one slot would keep pushing
 * each other out, for the life of the process). */
#define PC_HINT_SLOTS 16
/* More header lines than this: leave it to httpd (LimitRequestFields). */
#define PC_HINT_MAX_FIELDS 64

typedef struct pc_hint_t {
    const void *chain;           /* c->vhost_lookup_data */
    const server_rec *base;      /* c->base_server */
    apr_port_t port;             /* c->local_addr->port */
    int pool;
    apr_size_t len;              /* 0: empty slot */
    char host[PC_HINT_HOST_MAX];
} pc_hint_t;

/* Per worker thread: touched only by threads that see hand-offs. */
static __thread pc_hint_t hints[PC_HINT_SLOTS];
/* The entry a new Host replaces when none is free: the oldest. */
static __thread unsigned int next_victim;

/* The end of the line starting at 'p': its CR, or NULL when the line is
 * incomplete or ends in a bare LF (left to httpd). */
static const char *line_end(const char *p, const char *end)
{
    const char *lf = memchr(p, '\n', (apr_size_t)(end - p));

    if (lf == NULL || lf == p || lf[-1] != '\r') {
        return NULL;
    }
    return lf - 1;
}

static int is_tchar(unsigned char ch)
{
    return apr_isalnum(ch) || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Methods httpd knows without RegisteredMethods and handles after the
 * vhost is chosen (not CONNECT). */
static int common_method(const char *m, apr_size_t len)
{
    static const char *const known[] = {
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", NULL
    };
    int i;

    for (i = 0; known[i] != NULL; i++) {
        if (strlen(known[i]) == len && memcmp(known[i], m, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* "METHOD /target HTTP/1.x", and nothing httpd's strict parser would
 * refuse on the way: a common method, a path, printable ASCII, no
 * fragment. */
static int request_line_ok(const char *b, const char *eol,
                           pc_hint_key_t *key)
{
    const char *p = b;

    while (p < eol && apr_isupper(*p)) {
        p++;
    }
    /* "//" would make httpd read an authority (user info, a port) that
     * it may refuse before it looks at the Host. */
    if (!common_method(b, (apr_size_t)(p - b)) || eol - p < 11
        || p[0] != ' ' || p[1] != '/' || p[2] == '/') {
        return 0;
    }
    key->head_only = (p - b == 4 && memcmp(b, "HEAD", 4) == 0);
    if (memcmp(eol - 9, " HTTP/1.", 8) != 0
        || (eol[-1] != '0' && eol[-1] != '1')) {
        return 0;
    }
    for (p += 1; p < eol - 9; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f
            || *p == '#') {
            return 0;
        }
    }
    return 1;
}

/* The value of a header line, without leading and trailing white space:
 * [*v, *end). */
static void trim_value(const char **v, const char **end)
{
    while (*v < *end && (**v == ' ' || **v == '\t')) {
        (*v)++;
    }
    while (*end > *v && ((*end)[-1] == ' ' || (*end)[-1] == '\t')) {
        (*end)--;
    }
}

/* Content-Length as httpd accepts it (ap_parse_strict_length): digits
 * only; we also keep it short of any overflow. */
static int length_ok(const char *v, const char *eol)
{
    trim_value(&v, &eol);
    if (v == eol || eol - v > 15) {
        return 0;
    }
    for (; v < eol; v++) {
        if (!apr_isdigit(*v)) {
            return 0;
        }
    }
    return 1;
}

static int chunked_only(const char *v, const char *eol)
{
    trim_value(&v, &eol);
    return eol - v == 7 && strncasecmp(v, "chunked", 7) == 0;
}

/* "name: value" with a token for the name and no control characters
 * but tabs in the value. */
static int field_ok(const char *line, const char *eol, const char **value)
{
    const char *p = line;

    while (p < eol && is_tchar((unsigned char)*p)) {
        p++;
    }
    if (p == line || p == eol || *p != ':') {
        return 0;
    }
    *value = p + 1;
    for (p++; p < eol; p++) {
        unsigned char ch = (unsigned char)*p;

        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* A Host value of plain name characters (a name, an IPv4 or bracketed
 * IPv6 address, an optional port), stored lower case. */
static int take_host(const char *v, const char *eol, pc_hint_key_t *key)
{
    apr_size_t i;

    trim_value(&v, &eol);
    key->len = (apr_size_t)(eol - v);
    if (key->len == 0 || key->len >= PC_HINT_HOST_MAX) {
        return 0;
    }
    for (i = 0; i < key->len; i++) {
        unsigned char ch = (unsigned char)v[i];

        if (!apr_isalnum(ch) && !strchr(".-:[]", ch)) {
            return 0;
        }
        key->host[i] = (char)apr_tolower(ch);
    }
    key->host[key->len] = '\0';
    return 1;
}

/* Is the header line at 'line', whose value starts at 'value', named
 * 'name' (lower case)? */
static int named(const char *line, const char *value, const char *name)
{
    apr_size_t len = strlen(name);

    return (apr_size_t)(value - line) == len + 1
           && strncasecmp(line, name, len) == 0;
}

int pc_hint_scan(const char *b, apr_size_t n, const pc_hint_limits_t *limits,
                 pc_hint_key_t *key)
{
    const char *end = b + n;
    const char *eol = line_end(b, end);
    const char *line;
    int hosts = 0, lengths = 0, codings = 0;
    int fields = 0;
    int max_fields = PC_HINT_MAX_FIELDS;

    if (limits->fields > 0 && limits->fields < max_fields) {
        max_fields = limits->fields;
    }
    if (eol == NULL || (apr_size_t)(eol - b) >= limits->line
        || !request_line_ok(b, eol, key)) {
        return 0;
    }
    for (line = eol + 2; ; line = eol + 2) {
        const char *value;

        if ((eol = line_end(line, end)) == NULL) {
            return 0;
        }
        if (eol == line) {               /* the empty line ends the head */
            return hosts == 1 && !(lengths && codings);
        }
        if (++fields > max_fields || (apr_size_t)(eol - line) >= limits->field
            || !field_ok(line, eol, &value)) {
            return 0;
        }
        if (named(line, value, "host")) {
            if (++hosts > 1 || !take_host(value, eol, key)) {
                return 0;
            }
        }
        else if (named(line, value, "content-length")) {
            if (++lengths > 1 || !length_ok(value, eol)) {
                return 0;
            }
        }
        else if (named(line, value, "transfer-encoding")) {
            if (++codings > 1 || !chunked_only(value, eol)) {
                return 0;
            }
        }
    }
}

static int same_key(const pc_hint_t *e, const conn_rec *c,
                    const pc_hint_key_t *key)
{
    return e->len == key->len && e->port == c->local_addr->port
           && e->chain == c->vhost_lookup_data && e->base == c->base_server
           && memcmp(e->host, key->host, key->len) == 0;
}

static pc_hint_t *find(const conn_rec *c, const pc_hint_key_t *key)
{
    unsigned int i;

    for (i = 0; i < PC_HINT_SLOTS; i++) {
        if (same_key(&hints[i], c, key)) {
            return &hints[i];
        }
    }
    return NULL;
}

int pc_hint_lookup(const conn_rec *c, const pc_hint_key_t *key)
{
    const pc_hint_t *e = find(c, key);

    return e != NULL ? e->pool : -1;
}

void pc_hint_learn(const conn_rec *c, const pc_hint_key_t *key, int pool)
{
    pc_hint_t *e = find(c, key);

    if (e == NULL) {
        e = &hints[next_victim++ % PC_HINT_SLOTS];
        e->chain = c->vhost_lookup_data;
        e->base = c->base_server;
        e->port = c->local_addr->port;
        e->len = key->len;
        memcpy(e->host, key->host, key->len);
    }
    e->pool = pool;
}
