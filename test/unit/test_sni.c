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
    unsigned char *scratch = malloc(n ? n : 1);
    int rv;

    memcpy(copy, o->b, n);
    rv = pc_sni_parse(copy, n, scratch, name);
    free(copy);
    free(scratch);
    return rv;
}

/* The ClientHello of one record 'in' sent again in records whose
 * fragments are 'first' bytes, then 'rest' bytes each (as a client, or
 * anyone on the way, may split it). */
static void reframe(buf_t *out, const buf_t *in, size_t first, size_t rest)
{
    size_t at = 5, left = in->n - 5;

    out->n = 0;
    while (left > 0) {
        size_t k = out->n == 0 ? first : rest;

        k = k < left ? k : left;
        put_n(out, 22, 1);
        put_n(out, 0x0301, 2);
        put_n(out, k, 2);
        put(out, in->b + at, k);
        at += k;
        left -= k;
    }
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
    o.b[6] = 0x7f;                 /* handshake longer than its records */
    expect("handshake longer than what came", parse(&o, o.n, name) == -1);
    expect("... and the next record's header wanted",
           pc_sni_need(o.b, o.n) == o.n + 5);

    {
        buf_t one, split;
        size_t at;

        hello(&one, "b.test", 300);
        expect("one whole record: nothing more wanted",
               pc_sni_need(one.b, one.n) == 0);
        all = 1;
        for (at = 1; at < one.n - 5; at++) {
            reframe(&split, &one, at, 16384);
            if (parse(&split, split.n, name) != 1
                || strcmp(name, "b.test") != 0
                || pc_sni_need(split.b, split.n) != 0) {
                all = 0;
            }
        }
        expect("hello split in two records anywhere: name found", all);
        reframe(&split, &one, 1, 1);
        expect("hello in one-byte records: name found",
               parse(&split, split.n, name) == 1
               && strcmp(name, "b.test") == 0);
        all = 1;
        for (cut = 0; cut < split.n; cut++) {
            size_t need = pc_sni_need(split.b, cut);

            if (parse(&split, cut, name) != -1 || need <= cut
                || need > split.n) {
                all = 0;
            }
        }
        expect("every cut of the split hello: not all there, more wanted",
               all);
        reframe(&split, &one, 40, 16384);
        split.b[40 + 5] = 23;      /* the second record is not handshake */
        expect("hello continued in another record type: not a hello",
               parse(&split, split.n, name) == -1
               && pc_sni_need(split.b, split.n) == 0);
    }
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
