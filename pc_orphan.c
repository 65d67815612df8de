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

/* pc_orphan.c: a listener whose vhosts all belong to one pool (an IP- or
 * port-based tenant) is accepted by that pool's children only.  While the
 * parent keeps that pool down (its children cannot become its user,
 * PC0205, or die right after start, PC0206) nobody accepts there: the
 * kernel would complete every handshake and leave the clients waiting in
 * the listen backlog until they gave up.  The parent, which holds every
 * listener, accepts them itself instead and answers 503, as a sender
 * does for a shared listener; TLS connections are closed (a plain-text
 * answer means nothing to them), so that they fail at once too.
 *
 * The parent never reads these requests: it answers at once, then drops
 * what the client sends until it closes (at most PC_ORPHAN_LINGER), so
 * that the close does not reset a connection whose 503 is still unread.
 * The sockets are fresh from accept(): no tenant has a copy, and nothing
 * done on them can block (non-blocking, no SO_LINGER). */

#include "perchild.h"
#include "pc_handoff.h"
#include "pc_orphan.h"
#include "http_log.h"
#include "http_main.h"
#include "apr_portable.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

/* Connections taken per listener and round; the rest wait a round (the
 * parent's loop turns ten times a second). */
#define PC_ORPHAN_BATCH 64
/* Answered connections waiting for their clients to close. */
#define PC_ORPHAN_LINGERING 256
#define PC_ORPHAN_LINGER apr_time_from_sec(2)

typedef struct {
    int fd;
    apr_time_t until;
} lingering_t;

static lingering_t lingering[PC_ORPHAN_LINGERING];
static int nlingering;
static char *said;        /* per listener: PC0217 said for this outage */

void pc_orphan_init(void)
{
    said = apr_pcalloc(pc_pconf, pc_conf->listeners->nelts + 1);
}

/* 1 if no running pool accepts 'pl'; 'down' is then one that would. */
static int orphaned(const pc_listener_t *pl, int *down)
{
    int i;

    *down = -1;
    for (i = 0; i < pc_conf->pools->nelts; i++) {
        if (!pc_pools_accepts(i, pl)) {
            continue;
        }
        if (pc_pools_get(i)->slots > 0 && !pc_parent_pool_down(i)) {
            return 0;
        }
        if (*down < 0) {
            *down = i;
        }
    }
    return *down >= 0;
}

/* Reads and drops what the client sent; 1 once it has closed (or the
 * connection failed). */
static int drain(int fd)
{
    char sink[4096];
    int i;

    for (i = 0; i < 16; i++) {
        ssize_t got = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);

        if (got == 0) {
            return 1;
        }
        if (got < 0) {
            return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
        }
    }
    return 0;
}

static void linger_add(int fd, apr_time_t now)
{
    if (nlingering == PC_ORPHAN_LINGERING) {
        close(fd);                /* a flood: its answer may be reset */
        return;
    }
    lingering[nlingering].fd = fd;
    lingering[nlingering].until = now + PC_ORPHAN_LINGER;
    nlingering++;
}

static void linger_round(apr_time_t now)
{
    int i = 0;

    while (i < nlingering) {
        if (drain(lingering[i].fd) || now >= lingering[i].until) {
            close(lingering[i].fd);
            lingering[i] = lingering[--nlingering];
        }
        else {
            i++;
        }
    }
}

static void answer(int fd, int tls, apr_time_t now)
{
    char buf[512];
    int len;

    if (tls) {
        close(fd);
        return;
    }
    len = pc_handoff_refusal(buf, sizeof(buf), 0);
    if (send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) != len) {
        close(fd);
        return;
    }
    shutdown(fd, SHUT_WR);
    linger_add(fd, now);
}

/* Takes what waits on 'pl' now; how many it answered. */
static int answer_waiting(const pc_listener_t *pl, apr_time_t now)
{
    apr_os_sock_t lfd;
    int n, flags;

    if (apr_os_sock_get(&lfd, pl->lr->sd) != APR_SUCCESS || lfd < 0) {
        return 0;
    }
    /* The children of the pool set it too (on the same open file); a
     * pool that never started a child has not. */
    flags = fcntl(lfd, F_GETFL);
    if (flags < 0
        || (!(flags & O_NONBLOCK)
            && fcntl(lfd, F_SETFL, flags | O_NONBLOCK) != 0)) {
        return 0;
    }
    for (n = 0; n < PC_ORPHAN_BATCH; n++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            break;                /* nothing more, or try next round */
        }
        answer(fd, pl->tls, now);
    }
    return n;
}

void pc_orphan_check(void)
{
    apr_time_t now = apr_time_now();
    int i, down;

    if (pc_one_process || said == NULL) {
        return;
    }
    linger_round(now);
    for (i = 0; i < pc_conf->listeners->nelts; i++) {
        const pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                                 pc_listener_t);

        if (!orphaned(pl, &down)) {
            said[i] = 0;
            continue;
        }
        if (answer_waiting(pl, now) > 0 && !said[i]) {
            said[i] = 1;
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                         "PC0217: listener %pI is accepted by no running "
                         "pool (pool %s is down): the parent %s until the "
                         "pool is back", pl->lr->bind_addr,
                         pc_pools_label(pc_pools_get(down)),
                         pl->tls ? "closes its TLS connections at once"
                                 : "answers its connections 503");
        }
    }
}
