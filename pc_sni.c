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

/* pc_sni.c: the server name of a TLS ClientHello (RFC 8446 4.1.2,
 * RFC 6066 3), read from untrusted bytes with every length checked
 * against what is there, and the vhost mod_ssl would pick for it. */

#include "pc_sni.h"
#include "http_config.h"
#include "http_vhost.h"
#include "apr_lib.h"

#include <string.h>
#include <strings.h>

/* A cursor over untrusted bytes: every read checks what is left. */
typedef struct cur_t {
    const unsigned char *p;
    apr_size_t left;
} cur_t;

static int take(cur_t *c, apr_size_t n, const unsigned char **out)
{
    if (c->left < n) {
        return 0;
    }
    if (out != NULL) {
        *out = c->p;
    }
    c->p += n;
    c->left -= n;
    return 1;
}

/* A big-endian number of 'n' (1 to 3) bytes. */
static int number(cur_t *c, apr_size_t n, apr_size_t *v)
{
    const unsigned char *b;
    apr_size_t i;

    if (!take(c, n, &b)) {
        return 0;
    }
    for (*v = 0, i = 0; i < n; i++) {
        *v = (*v << 8) | b[i];
    }
    return 1;
}

/* A vector with a length of 'n' bytes in front: 'sub' covers it. */
static int vector(cur_t *c, apr_size_t n, cur_t *sub)
{
    apr_size_t len;

    if (!number(c, n, &len) || !take(c, len, &sub->p)) {
        return 0;
    }
    sub->left = len;
    return 1;
}

/* The host_name of a server_name extension's body. */
static int host_name(cur_t ext, char name[PC_SNI_MAX + 1])
{
    cur_t list, entry;
    apr_size_t type, i;

    if (!vector(&ext, 2, &list)) {
        return 0;
    }
    while (list.left > 0) {
        if (!number(&list, 1, &type) || !vector(&list, 2, &entry)) {
            return 0;
        }
        if (type != 0) {
            continue;
        }
        if (entry.left == 0 || entry.left > PC_SNI_MAX) {
            return 0;
        }
        for (i = 0; i < entry.left; i++) {
            unsigned char ch = entry.p[i];

            /* A DNS name: anything else matches no ServerName. */
            if (!(apr_isalnum(ch) || ch == '.' || ch == '-' || ch == '_')) {
                return 0;
            }
            name[i] = (char)ch;
        }
        name[entry.left] = '\0';
        return 1;
    }
    return 0;
}

/* Walks the handshake records at the start of 'b', joining their
 * fragments into 'out' (when not NULL).  Returns the bytes joined;
 * *next is where the records stopped: the first byte not consumed, or
 * the end of the record (or record header) cut short; *whole says
 * whether the first handshake message is all there. */
static apr_size_t join_records(const unsigned char *b, apr_size_t n,
                               unsigned char *out, apr_size_t *next,
                               int *whole)
{
    apr_size_t at = 0, got = 0, want = 0;
    unsigned char head[4];

    *whole = 0;
    for (;;) {
        apr_size_t rl, i;

        *next = at + 5;
        if ((n > at && b[at] != 22) || (n > at + 1 && b[at + 1] != 3)) {
            *next = 0;
            return got;           /* not (or no longer) a handshake */
        }
        if (n < at + 5) {
            return got;           /* the record header is cut short */
        }
        rl = ((apr_size_t)b[at + 3] << 8) | b[at + 4];
        *next = at + 5 + rl;
        if (n < at + 5 + rl) {
            return got;
        }
        for (i = 0; i < rl; i++, got++) {
            if (got < 4) {
                head[got] = b[at + 5 + i];
            }
            if (out != NULL) {
                out[got] = b[at + 5 + i];
            }
        }
        at += 5 + rl;
        if (got >= 4) {
            want = 4 + (((apr_size_t)head[1] << 16)
                        | ((apr_size_t)head[2] << 8) | head[3]);
            if (got >= want) {
                *whole = 1;
                *next = 0;
                return got;
            }
        }
    }
}

apr_size_t pc_sni_need(const unsigned char *b, apr_size_t n)
{
    apr_size_t next;
    int whole;

    join_records(b, n, NULL, &next, &whole);
    return next;
}

int pc_sni_parse(const unsigned char *b, apr_size_t n,
                 unsigned char *scratch, char name[PC_SNI_MAX + 1])
{
    cur_t msg, body, skip, exts, ext;
    apr_size_t type, len, next;
    int whole;

    name[0] = '\0';
    /* The ClientHello, joined from the handshake records it came in. */
    msg.p = scratch;
    msg.left = join_records(b, n, scratch, &next, &whole);
    if (!whole) {
        return -1;
    }
    if (!number(&msg, 1, &type) || type != 1 || !number(&msg, 3, &len)
        || !take(&msg, len, &body.p)) {
        return -1;
    }
    body.left = len;
    /* legacy_version, random, session id, cipher suites, compression */
    if (!take(&body, 2 + 32, NULL) || !vector(&body, 1, &skip)
        || !vector(&body, 2, &skip) || !vector(&body, 1, &skip)) {
        return -1;
    }
    if (body.left == 0) {
        return 0;                          /* no extensions at all */
    }
    if (!vector(&body, 2, &exts)) {
        return -1;
    }
    while (exts.left > 0) {
        if (!number(&exts, 2, &type) || !vector(&exts, 2, &ext)) {
            return -1;
        }
        if (type == 0) {                   /* server_name */
            return host_name(ext, name) ? 1 : -1;
        }
    }
    return 0;
}

typedef struct find_t {
    const char *name;
    server_rec *found;
} find_t;

/* As mod_ssl matches a vhost: ServerName, then ServerAlias, then
 * wildcard ServerAlias. */
static int matches(void *baton, conn_rec *c, server_rec *s)
{
    find_t *f = baton;
    apr_array_header_t *names;
    int i;

    (void)c;

    if (s->server_hostname != NULL
        && strcasecmp(f->name, s->server_hostname) == 0) {
        f->found = s;
        return 1;
    }
    if ((names = s->names) != NULL) {
        char **name = (char **)names->elts;

        for (i = 0; i < names->nelts; i++) {
            if (name[i] != NULL && strcasecmp(f->name, name[i]) == 0) {
                f->found = s;
                return 1;
            }
        }
    }
    if ((names = s->wild_names) != NULL) {
        char **name = (char **)names->elts;

        for (i = 0; i < names->nelts; i++) {
            if (name[i] != NULL && !ap_strcasecmp_match(f->name, name[i])) {
                f->found = s;
                return 1;
            }
        }
    }
    return 0;
}

server_rec *pc_sni_vhost(conn_rec *c, const char *name)
{
    char bare[PC_SNI_MAX + 1];
    apr_size_t len = strlen(name);
    find_t f;

    /* "a.test." is a.test: the Host of the requests that follow picks
     * their vhost without the dot (vhost.c: fix_hostname). */
    if (len > 1 && len <= PC_SNI_MAX && name[len - 1] == '.') {
        memcpy(bare, name, len - 1);
        bare[len - 1] = '\0';
        name = bare;
    }
    f.name = name;
    f.found = NULL;
    if (name[0] != '\0') {
        ap_vhost_iterate_given_conn(c, matches, &f);
    }
    return f.found != NULL ? f.found : c->base_server;
}
