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

/* pc_hint.h: guessing a request's owner from its raw head, before httpd
 * parses it, so that a connection bound for another pool leaves without
 * this process building a request for it.
 *
 * The guess is only ever a hint: it comes from a small per-thread cache
 * of what httpd itself decided for the same Host on the same kind of
 * connection, and the receiving child still checks every request with
 * httpd's own lookup.  A wrong hint costs one more hop, never a request
 * served by the wrong user. */

#ifndef PC_HINT_H
#define PC_HINT_H

#include "httpd.h"

/* Longest Host value the cache keeps. */
#define PC_HINT_HOST_MAX 64

/* What pc_hint_scan found in a request head. */
typedef struct pc_hint_key_t {
    char host[PC_HINT_HOST_MAX];  /* lower case, as sent otherwise */
    apr_size_t len;
    int head_only;               /* a HEAD request */
} pc_hint_key_t;

/* httpd's limits on a request head (the connection's base server's
 * LimitRequestLine, LimitRequestFieldSize, LimitRequestFields; 0 fields:
 * no limit). */
typedef struct pc_hint_limits_t {
    apr_size_t line;
    apr_size_t field;
    int fields;
} pc_hint_limits_t;

/* Looks at the bytes 'b' (n of them) that start a request: returns 1 and
 * fills 'key' if they hold the whole head of a plain HTTP/1.x request in
 * origin form ("GET /path HTTP/1.1") with exactly one ordinary Host
 * header, and nothing httpd refuses before it looks at the Host (within
 * 'limits'); 0 for anything else (which then takes httpd's own path). */
int pc_hint_scan(const char *b, apr_size_t n, const pc_hint_limits_t *limits,
                 pc_hint_key_t *key);

/* The pool httpd chose last time for this Host on a connection like
 * 'c' (same address, port and vhost chain), or -1 if this thread has
 * not seen it. */
int pc_hint_lookup(const conn_rec *c, const pc_hint_key_t *key);

/* Remembers that httpd chose a vhost of 'pool' for this Host on 'c'. */
void pc_hint_learn(const conn_rec *c, const pc_hint_key_t *key, int pool);

#endif /* PC_HINT_H */
