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

/* Unit tests of pc_hint.c: which raw request heads may be passed on by
 * their Host before httpd parses them, and the per-thread cache of
 * httpd's decisions.  Needs httpd's and APR's headers only (apache2-dev);
 * no running httpd.  Prints one line per case, then "N passed, N failed". */

#include "pc_hint.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "expect.h"

/* httpd's defaults: LimitRequestLine, LimitRequestFieldSize 8190,
 * LimitRequestFields 100. */
static pc_hint_limits_t limits = { 8190, 8190, 100 };

/* Scans 'head' (NUL-terminated); returns 1 and the host if it hints. */
static int scan(const char *head, pc_hint_key_t *key)
{
    memset(key, 0, sizeof(*key));
    return pc_hint_scan(head, strlen(head), &limits, key);
}

static void hints(const char *name, const char *head, const char *host,
                  int head_only)
{
    pc_hint_key_t key;
    int ok = scan(head, &key);

    expect(name, ok && strcmp(key.host, host) == 0
                 && key.len == strlen(host) && key.head_only == head_only);
}

static void no_hint(const char *name, const char *head)
{
    pc_hint_key_t key;

    expect(name, !scan(head, &key));
}

static void test_scan(void)
{
    static char many[8192];
    int i;

    hints("plain GET", "GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n", "a.test",
          0);
    hints("HEAD", "HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n", "a.test", 1);
    hints("HTTP/1.0 with Host", "GET / HTTP/1.0\r\nHost: a.test\r\n\r\n",
          "a.test", 0);
    hints("upper case, OWS, port",
          "GET / HTTP/1.1\r\nUser-Agent: x\r\nhOsT: \t A.Test:8080 \r\n"
          "Accept: */*\r\n\r\n", "a.test:8080", 0);
    hints("IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
          "[::1]:80", 0);
    hints("body and pipelined bytes after the head",
          "POST /f HTTP/1.1\r\nHost: b.test\r\nContent-Length: 3\r\n\r\n"
          "abcGET / HTTP/1.1\r\n", "b.test", 0);
    hints("tab in a value", "GET / HTTP/1.1\r\nX: a\tb\r\nHost: c\r\n\r\n",
          "c", 0);

    no_hint("no Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n");
    no_hint("two Hosts",
            "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n");
    no_hint("empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n");
    no_hint("absolute URI",
            "GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    no_hint("HTTP/0.9", "GET /\r\n\r\n");
    no_hint("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a.test\r\n\r\n");
    no_hint("lower-case method", "get / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    no_hint("two spaces", "GET  / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("space in target", "GET /a b HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("incomplete head", "GET / HTTP/1.1\r\nHost: a.test\r\n");
    no_hint("incomplete line", "GET / HTTP/1.1\r\nHost: a.te");
    no_hint("bare LF", "GET / HTTP/1.1\nHost: a.test\n\n");
    no_hint("bare LF in a header", "GET / HTTP/1.1\r\nX: 1\nHost: a\r\n\r\n");
    no_hint("folded header",
            "GET / HTTP/1.1\r\nHost: a.test\r\nX: 1\r\n 2\r\n\r\n");
    no_hint("space before colon", "GET / HTTP/1.1\r\nHost : a.test\r\n\r\n");
    no_hint("no colon", "GET / HTTP/1.1\r\nHost a.test\r\n\r\n");
    no_hint("control character in a value",
            "GET / HTTP/1.1\r\nX: a\001\r\nHost: a.test\r\n\r\n");
    no_hint("odd character in Host", "GET / HTTP/1.1\r\nHost: a_b/c\r\n\r\n");
    no_hint("Host with a comma",
            "GET / HTTP/1.1\r\nHost: a.test, b.test\r\n\r\n");
    no_hint("Host too long",
            "GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test\r\n\r\n");
    no_hint("X-Host is not Host", "GET / HTTP/1.1\r\nX-Host: a\r\n\r\n");

    hints("chunked body", "POST / HTTP/1.1\r\nHost: a\r\n"
          "Transfer-Encoding: Chunked\r\n\r\n", "a", 0);
    hints("OPTIONS, DELETE, PUT, PATCH",
          "PATCH /x HTTP/1.1\r\nHost: a\r\n\r\n", "a", 0);
    no_hint("CONNECT", "CONNECT /x HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("an unregistered method",
            "BREW /pot HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("a PROXY header is request data here",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n"
            "Host: a.test\r\n\r\n");
    no_hint("authority in the target (user info)",
            "GET //u:p@x/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("authority in the target (bad port)",
            "GET //x:abc/ HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("fragment in the target",
            "GET /a#b HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("8-bit byte in the target",
            "GET /\xe9 HTTP/1.1\r\nHost: a.test\r\n\r\n");
    no_hint("invalid Content-Length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n");
    no_hint("negative Content-Length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n");
    no_hint("two Content-Lengths",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
            "Content-Length: 1\r\n\r\n");
    no_hint("Transfer-Encoding other than chunked",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, "
            "chunked\r\n\r\n");
    no_hint("Transfer-Encoding and Content-Length",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "Content-Length: 3\r\n\r\n");

    limits.line = 16;
    no_hint("request line at LimitRequestLine",
            "GET /0123456789 HTTP/1.1\r\nHost: a\r\n\r\n");
    limits.line = 8190;
    limits.field = 10;
    no_hint("header line at LimitRequestFieldSize",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123\r\n\r\n");
    limits.field = 8190;
    limits.fields = 2;
    no_hint("more header lines than LimitRequestFields",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n");
    limits.fields = 0;
    hints("LimitRequestFields 0: no limit of httpd's",
          "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n", "a", 0);
    limits.fields = 100;

    strcpy(many, "GET / HTTP/1.1\r\nHost: a.test\r\n");
    for (i = 0; i < 70; i++) {
        strcat(many, "X-F: 1\r\n");
    }
    strcat(many, "\r\n");
    no_hint("more than 64 header lines", many);
}

static conn_rec make_conn(apr_sockaddr_t *sa, apr_port_t port, void *chain,
                          server_rec *base)
{
    conn_rec c;

    memset(&c, 0, sizeof(c));
    memset(sa, 0, sizeof(*sa));
    sa->port = port;
    c.local_addr = sa;
    c.vhost_lookup_data = chain;
    c.base_server = base;
    return c;
}

static void *other_thread(void *arg)
{
    pc_hint_key_t *key = arg;
    apr_sockaddr_t sa;
    conn_rec c = make_conn(&sa, 80, NULL, NULL);

    return (void *)(long)pc_hint_lookup(&c, key);
}

/* The key of a request for Host <prefix><n>.test. */
static const pc_hint_key_t *numbered_host(const char *prefix, int n,
                                          pc_hint_key_t *k)
{
    char head[128];

    snprintf(head, sizeof(head),
             "GET / HTTP/1.1\r\nHost: %s%d.test\r\n\r\n",
             prefix, n);
    scan(head, k);
    return k;
}

static void test_cache(void)
{
    static server_rec base1, base2;
    static int chain1, chain2;
    apr_sockaddr_t sa1, sa2;
    conn_rec c1 = make_conn(&sa1, 80, &chain1, &base1);
    conn_rec c2;
    pc_hint_key_t a, b, a_upper, k;
    pthread_t t;
    void *res;
    int i, all;

    scan("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", &a);
    scan("GET / HTTP/1.1\r\nHost: b.test\r\n\r\n", &b);
    scan("GET / HTTP/1.1\r\nHost: A.TEST\r\n\r\n", &a_upper);

    expect("unknown Host: no hint", pc_hint_lookup(&c1, &a) == -1);
    pc_hint_learn(&c1, &a, 3);
    expect("learnt Host: its pool", pc_hint_lookup(&c1, &a) == 3);
    expect("other letter case: same entry",
           pc_hint_lookup(&c1, &a_upper) == 3);
    expect("another Host: no hint", pc_hint_lookup(&c1, &b) == -1);

    c2 = make_conn(&sa2, 8080, &chain1, &base1);
    expect("another port: no hint", pc_hint_lookup(&c2, &a) == -1);
    c2 = make_conn(&sa2, 80, &chain2, &base1);
    expect("another vhost chain: no hint", pc_hint_lookup(&c2, &a) == -1);
    c2 = make_conn(&sa2, 80, &chain1, &base2);
    expect("another base server: no hint", pc_hint_lookup(&c2, &a) == -1);

    pc_hint_learn(&c1, &a, 5);
    expect("relearnt: the newer pool", pc_hint_lookup(&c1, &a) == 5);

    pthread_create(&t, NULL, other_thread, &a);
    pthread_join(t, &res);
    expect("another thread has a cache of its own", (long)res == -1);

    /* Many Hosts: whatever is still cached must be right. */
    all = 1;
    for (i = 0; i < 200; i++) {
        pc_hint_learn(&c1, numbered_host("h", i, &k), i);
    }
    for (i = 0; i < 200; i++) {
        int got = pc_hint_lookup(&c1, numbered_host("h", i, &k));

        if (got != -1 && got != i) {
            all = 0;
        }
    }
    expect("a full cache never answers another Host's pool", all);

    /* Sixteen Hosts, learnt one after another, are all found (a hashed
     * table would lose some of them to collisions); a seventeenth takes
     * the place of the oldest only. */
    all = 1;
    for (i = 0; i < 16; i++) {
        pc_hint_learn(&c1, numbered_host("s", i, &k), 100 + i);
    }
    for (i = 0; i < 16; i++) {
        if (pc_hint_lookup(&c1, numbered_host("s", i, &k)) != 100 + i) {
            all = 0;
        }
    }
    expect("16 Hosts learnt in turn: every one found", all);
    pc_hint_learn(&c1, numbered_host("s", 16, &k), 116);
    expect("a 17th Host replaces the oldest only",
           pc_hint_lookup(&c1, numbered_host("s", 16, &k)) == 116
           && pc_hint_lookup(&c1, numbered_host("s", 0, &k)) == -1
           && pc_hint_lookup(&c1, numbered_host("s", 1, &k)) == 101);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_scan();
    test_cache();
    return expect_summary();
}
