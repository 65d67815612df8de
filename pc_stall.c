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

/* pc_stall.c: a connection passed to a pool waits in that pool's channel
 * until one of its children takes it.  A sender cannot tell a pool that
 * is only busy from one whose children are stopped (SIGSTOP, a debugger)
 * or hung, and refuses only once the channel is full; the connections
 * already queued would wait as long as the pool does.  The parent holds
 * every channel's receiving end, so it watches them: a channel that has
 * held records while the children reading it showed no sign of life
 * (no request finished, no worker changed state, no new child) for
 * PerchildQueueTimeout is drained here, each connection answered 503
 * (or closed where HTTP/1 means nothing: TLS, HTTP/2) and closed. */

#include "perchild.h"
#include "pc_handoff.h"
#include "pc_stall.h"
#include "http_log.h"
#include "http_main.h"
#include "scoreboard.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* Records drained from one channel per round: the parent has other work. */
#define PC_STALL_MAX_DRAIN 64

typedef struct watch_t {
    apr_time_t since;        /* waiting, with no sign of life, since */
    apr_uint64_t life;       /* the readers' state then */
} watch_t;

static watch_t *watches;     /* per pool and way: [pool * ways_max + way] */
static int watch_pools, watch_ways;
static ap_generation_t watch_gen = -1;
static char *drain_buf;

/* A summary of the scoreboard of the children that read way 'way' of
 * 'pool': it changes whenever one of them finishes a request, a worker
 * changes state, or a child is replaced. */
static apr_uint64_t readers_life(const pc_pool_t *pl, int way, int live)
{
    apr_uint64_t life = 0;
    int i, t;

    for (i = 0; i < pl->slots; i++) {
        int slot = pl->first_slot + i;

        if (live > 1 && i % live != way % live) {
            continue;
        }
        life = life * 31 + (apr_uint64_t)ap_scoreboard_image->parent[slot].pid;
        for (t = 0; t < pc_conf->thread_limit; t++) {
            worker_score *ws = ap_get_scoreboard_worker_from_indexes(slot, t);

            life = life * 31 + ws->access_count * 7 + ws->status;
        }
    }
    return life;
}

static int has_records(int fd)
{
    struct pollfd p;

    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Answers and closes what waits in channel 'fd'; returns how many. */
static int drain(int fd)
{
    int n;

    for (n = 0; n < PC_STALL_MAX_DRAIN; n++) {
        pc_passed_t passed;
        apr_status_t rv;

        memset(&passed, 0, sizeof(passed));
        rv = pc_handoff_receive(fd, drain_buf, &passed);
        if (APR_STATUS_IS_EAGAIN(rv) || rv == EPIPE) {
            break;
        }
        if (rv == APR_SUCCESS) {
            pc_handoff_refuse_passed(&passed);
        }
    }
    return n;
}

/* (Re)sizes the state when a generation brings other pools or ways. */
static int watch_setup(void)
{
    int i, ways, live, most = 1;
    int pools = pc_conf->pools->nelts;

    if (watch_gen == pc_retained->mpm->my_generation && watches != NULL) {
        return 1;
    }
    for (i = 0; i < pools; i++) {
        pc_handoff_parent_chan(i, 0, &ways, &live);
        if (ways > most) {
            most = ways;
        }
    }
    free(watches);
    watches = calloc((size_t)pools * most, sizeof(*watches));
    if (drain_buf == NULL) {
        drain_buf = malloc(pc_handoff_bufsize());
    }
    if (watches == NULL || drain_buf == NULL) {
        return 0;
    }
    watch_pools = pools;
    watch_ways = most;
    watch_gen = pc_retained->mpm->my_generation;
    return 1;
}

static void check_channel(int pool, int way, int fd, int live,
                          apr_time_t now)
{
    watch_t *w = &watches[pool * watch_ways + way];
    const pc_pool_t *pl = pc_pools_get(pool);
    apr_uint64_t life;
    int n;

    if (!has_records(fd)) {
        w->since = 0;
        return;
    }
    life = readers_life(pl, way, live);
    if (w->since == 0 || life != w->life) {
        w->since = now;
        w->life = life;
        return;
    }
    if (now - w->since < apr_time_from_sec(pc_conf->queue_timeout)) {
        return;
    }
    n = drain(fd);
    w->since = 0;
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                 "PC0318: pool %s took no connection from its channel for "
                 "%d seconds (its children are stopped or hung, or every "
                 "worker is busy); answered the %d waiting with 503",
                 pc_pools_label(pl), pc_conf->queue_timeout, n);
}

void pc_stall_check(apr_time_t now)
{
    int i, w, ways, live;

    if (pc_conf->queue_timeout <= 0 || pc_conf->pools->nelts < 2
        || !watch_setup()) {
        return;
    }
    for (i = 0; i < watch_pools; i++) {
        pc_handoff_parent_chan(i, 0, &ways, &live);
        for (w = 0; w < ways && w < watch_ways; w++) {
            int fd = pc_handoff_parent_chan(i, w, &ways, &live);

            if (fd >= 0) {
                check_channel(i, w, fd, live, now);
            }
        }
    }
}
