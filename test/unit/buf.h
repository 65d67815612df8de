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

/* buf.h: the byte buffer the parser tests build their inputs in (a TLS
 * ClientHello, an HTTP/2 start: at most one 16 KiB frame or record and
 * what precedes it). */

#ifndef PC_UNIT_BUF_H
#define PC_UNIT_BUF_H

#include <string.h>

typedef struct buf_t {
    unsigned char b[20000];
    size_t n;
} buf_t;

static void put(buf_t *o, const void *p, size_t n)
{
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

#endif /* PC_UNIT_BUF_H */
