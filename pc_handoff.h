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

/* pc_handoff.h: moving a connection to the pool that owns its vhost.
 * The child loop (pc_child.c) calls these; HTTP knowledge stays here. */

#ifndef PC_HANDOFF_H
#define PC_HANDOFF_H

#include "httpd.h"

#include <sys/socket.h>

/* Values of a socket-table entry besides a descriptor (the design
 * card's shape). */
#define PC_SOCK_IDLE   (-1)
#define PC_SOCK_PASSED (-2)

/* A connection passed from another pool's child: the client descriptor
 * and the bytes already read from it, to be read again before the
 * socket.  'bytes' points into the receiving worker's own buffer, which
 * stays untouched until that worker is done with the connection. */
typedef struct pc_passed_t {
    int fd;
    unsigned hops;
    int from_dispatch;       /* sent by a dispatch pool's child */
    apr_uint32_t pre_keepalives;    /* the record's preamble */
    apr_uint32_t pre_flags;
    apr_interval_time_t keepalive_timeout;  /* given back: to wait for
                                             * the next request; -1: the
                                             * address's default */
    char *bytes;
    apr_size_t len;
    struct sockaddr_storage local;  /* the server's end of it */
} pc_passed_t;

/* Makes the passed descriptor httpd's socket in 'p', or refuses it
 * (logged, closed) if it is not connected. */
apr_status_t pc_handoff_wrap(apr_socket_t **sock, pc_passed_t *passed,
                             apr_pool_t *p);

/* Size of the buffer a receiving worker needs. */
apr_size_t pc_handoff_bufsize(void);

/* Parent, at open_logs: one channel per pool (none with a single pool). */
int pc_handoff_open_channels(apr_pool_t *pconf, server_rec *s);

/* Child start: keep only this pool's channel ends ('way': the channel
 * this child reads, see pc_affinity.h). */
void pc_handoff_child_init(int pool, int way);

/* The descriptors idle workers wait on for passed connections: stores
 * them in fds (unless NULL) and returns how many. */
int pc_handoff_channel_fds(int pool, int *fds);

/* Receives one passed connection (non-blocking) into 'buf' (of
 * pc_handoff_bufsize() bytes).  APR_SUCCESS fills 'out'; anything else
 * means nothing to serve. */
apr_status_t pc_handoff_receive(int chan, char *buf, pc_passed_t *out);

/* 'c' came in on a listener of this pool only: none of its requests can
 * be another pool's, so nothing needs recording. */
void pc_handoff_own_listener(conn_rec *c);

/* 'c' came in on bucket 'bucket' of a shared listener: hand-offs of it
 * go to the owner's channel of that bucket (PerchildCPUAffinity). */
void pc_handoff_accepted(conn_rec *c, int bucket);

/* Sends the connection on if a request on it was for another pool (or it
 * goes back to the dispatch pool), once httpd is done with it; on failure
 * answers 503 itself (or closes, between two requests). */
void pc_handoff_finish(conn_rec *c);

/* Parent: the receiving end of way 'way' of 'pool', or -1.  *ways is
 * how many channels the pool has, *live how many its children read
 * (channel w is read by the children of way w % *live). */
int pc_handoff_parent_chan(int pool, int way, int *ways, int *live);

/* Answers a passed connection nobody will serve (HTTP/1: 503; TLS or
 * HTTP/2 before their start, or between two requests: nothing) and shuts
 * its sending side down; the caller closes it. */
void pc_handoff_refuse_passed(pc_passed_t *passed);

/* Writes the 503 answer (with Retry-After, Connection: close) into 'buf';
 * its length. */
int pc_handoff_refusal(char *buf, apr_size_t size, int head_only);

/* Was 'passed' given back between two requests, with nothing of the
 * next request read yet (at most a PROXY header)?  Then it can wait for
 * that request without a worker (pc_park.c). */
int pc_handoff_parkable(const pc_passed_t *passed);

/* Makes conn_rec 'c' read the passed bytes before its socket. */
void pc_handoff_adopt(conn_rec *c, pc_passed_t *passed);

#endif /* PC_HANDOFF_H */
