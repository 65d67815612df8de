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

/* pc_sni.h: the owner of a TLS connection, from the server name its
 * ClientHello asks for, before any handshake.  A TLS session cannot move
 * between processes once it exists, but the connection can before it
 * starts: the owner's child then does the whole handshake itself. */

#ifndef PC_SNI_H
#define PC_SNI_H

#include "httpd.h"

/* Longest server name looked at (RFC 6066 allows 2^16 - 1; DNS 253). */
#define PC_SNI_MAX 255

/* Looks at the first bytes 'b' (n of them) of a connection.  Returns 1
 * and the server name in 'name' (NUL-terminated) if they hold a whole
 * TLS ClientHello with a host_name, in one handshake record or spread
 * over several (a client may split it anywhere); 0 if they hold a whole
 * ClientHello without one (name ""); -1 if they are not a ClientHello
 * or not all of it has arrived.  'scratch' (n bytes) takes the joined
 * message. */
int pc_sni_parse(const unsigned char *b, apr_size_t n,
                 unsigned char *scratch, char name[PC_SNI_MAX + 1]);

/* How much of 'b' (n bytes) the handshake records at its start need to
 * hold their whole first handshake message: *need (the end of the next
 * record header or record to read), or 0 when the message is complete
 * or 'b' does not start that way (no more bytes would help). */
apr_size_t pc_sni_need(const unsigned char *b, apr_size_t n);

/* The vhost mod_ssl picks for 'name' (one trailing dot dropped, as
 * httpd drops it from a Host) on connection 'c': its first ServerName,
 * ServerAlias or wildcard ServerAlias match among the connection's
 * name-based vhosts, else the connection's base server. */
server_rec *pc_sni_vhost(conn_rec *c, const char *name);

#endif /* PC_SNI_H */
