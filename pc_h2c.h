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

/* pc_h2c.h: the host a cleartext HTTP/2 connection (prior knowledge, as
 * mod_http2's direct mode takes it) asks for in its first request, before
 * mod_http2 reads it.  Once mod_http2 runs a session, its state (streams,
 * header compression) lives in that process and the connection cannot
 * move; before, it can go whole to the pool that owns the host. */

#ifndef PC_H2C_H
#define PC_H2C_H

#include "apr.h"

/* Longest host looked at (DNS names are at most 253). */
#define PC_H2C_MAX 255

/* The 24 bytes every HTTP/2 client sends first (RFC 9113, 3.4). */
#define PC_H2C_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PC_H2C_PREFACE_LEN 24
/* Every frame starts with 9 bytes: length, type, flags, stream. */
#define PC_H2C_FRAME_HEADER_LEN 9

/* Looks at the first bytes 'b' (n of them) of a connection.  Returns:
 *  1: they start with the preface and hold the first request's whole
 *     header block (a HEADERS frame, and the CONTINUATION frames that
 *     carry the rest of it); 'host' is its :authority (else its Host),
 *     the port removed, NUL-terminated ("" if it has neither);
 *  0: they could, once at least '*need' bytes are there ('*open' set
 *     when a header block has begun: the client sends the rest at once,
 *     without waiting for anything of the server's);
 * -1: they are not HTTP/2, or not a start this parser takes (a reference
 *     to HPACK's dynamic table, a malformed frame): mod_http2 decides
 *     alone, here.
 * 'scratch' (n bytes) takes a header block that came in several frames. */
int pc_h2c_parse(const unsigned char *b, apr_size_t n,
                 unsigned char *scratch, char host[PC_H2C_MAX + 1],
                 apr_size_t *need, int *open);

/* The server's part of a connection's start (RFC 9113, 3.4): an empty
 * SETTINGS frame. */
#define PC_H2C_SERVER_PREFACE "\0\0\0\4\0\0\0\0\0"
#define PC_H2C_SERVER_PREFACE_LEN 9

/* Where, in a connection's first bytes 'b' (n of them, from the preface
 * on), the first SETTINGS frame with the ACK flag starts that starts at
 * or after offset 'from'; -1 if none is there (yet). */
long pc_h2c_settings_ack(const unsigned char *b, apr_size_t n,
                         apr_size_t from);

/* Decodes HPACK's Huffman code (RFC 7541, 5.2 and Appendix B): 'n' bytes
 * at 'in' into at most 'max' bytes at 'out'.  Returns the decoded length,
 * or -1 if the input is not a valid code or does not fit. */
int pc_h2c_huffman(const unsigned char *in, apr_size_t n,
                   char *out, apr_size_t max);

#endif /* PC_H2C_H */
