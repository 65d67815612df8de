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

/* Unit tests of pc_sni_parse (pc_sni.c): the server name of a TLS
 * ClientHello, from untrusted bytes.  Builds ClientHellos byte by byte,
 * then cuts and corrupts them; every cut must read as "not all there"
 * and never past its end (run under valgrind by `make valgrind`).
 * Prints one line per case, then "N passed, N failed". */

#include "pc_sni.h"
#include "http_config.h"
#include "http_vhost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* pc_sni.c's vhost lookup needs httpd; these tests use the parser only. */
AP_DECLARE(int) ap_vhost_iterate_given_conn(conn_rec *c,
                                            ap_vhost_iterate_conn_cb cb,
                                            void *baton)
{
    (void)c; (void)cb; (void)baton;
    return 0;
}

AP_DECLARE(int) ap_strcasecmp_match(const char *str, const char *exp)
{
    return strcmp(str, exp);
}

#include "expect.h"
#include "buf.h"


static void put_n(buf_t *o, size_t v, int bytes)
{
    while (bytes-- > 0) {
        o->b[o->n++] = (unsigned char)(v >> (8 * bytes));
    }
}

/* A ClientHello record; 'sni' NULL for none; 'ext_extra' bytes of a
 * padding extension before it. */
static void hello(buf_t *o, const char *sni, size_t ext_extra)
{
    buf_t body = { {0}, 0 }, exts = { {0}, 0 };
    unsigned char random[32] = { 0 };

    put_n(&body, 0x0303, 2);
    put(&body, random, 32);
    put_n(&body, 0, 1);                       /* session id */
    put_n(&body, 2, 2);
    put_n(&body, 0x1301, 2);                  /* one cipher suite */
    put_n(&body, 1, 1);
    put_n(&body, 0, 1);                       /* null compression */
    if (ext_extra) {
        put_n(&exts, 21, 2);                  /* padding */
        put_n(&exts, ext_extra, 2);
        memset(exts.b + exts.n, 0, ext_extra);
        exts.n += ext_extra;
    }
    if (sni) {
        size_t len = strlen(sni);

        put_n(&exts, 0, 2);                   /* server_name */
        put_n(&exts, len + 5, 2);
        put_n(&exts, len + 3, 2);
        put_n(&exts, 0, 1);                   /* host_name */
        put_n(&exts, len, 2);
        put(&exts, sni, len);
    }
    put_n(&body, exts.n, 2);
    put(&body, exts.b, exts.n);

    o->n = 0;
    put_n(o, 22, 1);
    put_n(o, 0x0301, 2);
    put_n(o, body.n + 4, 2);
    put_n(o, 1, 1);
    put_n(o, body.n, 3);
    put(o, body.b, body.n);
}

static int parse(const buf_t *o, size_t n, char *name)
{
    /* A copy of exactly n bytes: reading past it is valgrind's to see. */
    unsigned char *copy = malloc(n ? n : 1);
    int rv;

    memcpy(copy, o->b, n);
    rv = pc_sni_parse(copy, n, name);
    free(copy);
    return rv;
}

int main(void)
{
    buf_t o;
    char name[PC_SNI_MAX + 1];
    size_t cut;
    int all;

    setvbuf(stdout, NULL, _IOLBF, 0);
    hello(&o, "b.test", 0);
    expect("server name found", parse(&o, o.n, name) == 1
                                && strcmp(name, "b.test") == 0);
    hello(&o, "b.test", 300);
    expect("after another extension", parse(&o, o.n, name) == 1
                                      && strcmp(name, "b.test") == 0);
    hello(&o, NULL, 0);
    expect("no server name: 0, empty", parse(&o, o.n, name) == 0
                                       && name[0] == '\0');

    hello(&o, "b.test", 300);
    all = 1;
    for (cut = 0; cut < o.n; cut++) {
        if (parse(&o, cut, name) != -1) {
            all = 0;
        }
    }
    expect("every cut-short hello: not all there", all);

    hello(&o, "b.test", 0);
    o.b[0] = 23;
    expect("not a handshake record", parse(&o, o.n, name) == -1);
    hello(&o, "b.test", 0);
    o.b[5] = 2;
    expect("not a ClientHello", parse(&o, o.n, name) == -1);
    hello(&o, "b.test", 0);
    o.b[1] = 2;
    expect("not TLS/SSL 3 framing", parse(&o, o.n, name) == -1);
    hello(&o, "b.test", 0);
    o.b[6] = 0x7f;                 /* handshake longer than its record */
    expect("hello split over records", parse(&o, o.n, name) == -1);
    hello(&o, "b/../x", 0);
    expect("odd characters in the name", parse(&o, o.n, name) == -1);

    hello(&o, "b.test", 0);
    all = 1;
    for (cut = 5; cut < o.n; cut++) {
        unsigned char keep = o.b[cut];
        int v;

        for (v = 0; v < 256; v += 51) {
            o.b[cut] = (unsigned char)v;
            if (parse(&o, o.n, name) == 1 && strlen(name) > PC_SNI_MAX) {
                all = 0;
            }
        }
        o.b[cut] = keep;
    }
    expect("corrupted bytes: never a name longer than the limit", all);

    return expect_summary();
}
