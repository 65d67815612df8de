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
 * or no longer take work although they have idle workers, and refuses
 * only once the channel is full; the connections already queued would
 * wait as long as the pool does.  The parent holds every channel's
 * receiving end, so it watches them.  A channel is stalled when it has
 * held records for PerchildQueueTimeout while the children that read it
 * showed no sign of life (no request finished, no worker changed state,
 * no child replaced) and, besides, one of them is stopped or has an idle
 * worker (a pool whose workers are all busy is not stalled: its senders
 * refuse once its channel is full, and the queued connections wait their
 * turn as in a listen queue).
 *
 * A stalled channel is emptied by a short-lived helper process, never by
 * the parent itself: the descriptors come from tenants' processes, which
 * keep copies and can make a send or a close on them wait (kernel TLS,
 * SO_LINGER).  The helper drops to the pool's own user, answers each
 * connection 503 (or closes it where HTTP/1 means nothing), lingers a
 * moment so that the answer is not lost to a reset, and exits; the
 * parent kills it if it takes longer than PC_HELPER_LIFE. */

#include "perchild.h"
#include "pc_handoff.h"
#include "pc_stall.h"
#include "http_log.h"
#include "http_main.h"
#include "scoreboard.h"
#include "apr_file_io.h"
#include "apr_portable.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

/* Connections one helper answers at the most; a later one takes more. */
#define PC_HELPER_MAX 1024
/* How long a helper waits for clients to read their 503s. */
#define PC_HELPER_LINGER_MS 2000
/* How long a helper may live before the parent kills it. */
#define PC_HELPER_LIFE apr_time_from_sec(5)

typedef struct watch_t {
    apr_time_t since;        /* waiting, with no sign of life, since */
    apr_uint64_t life;       /* the readers' scoreboard state then */
    int stalled;             /* emptied once: go on while nothing moves */
} watch_t;

static watch_t *watches;     /* [pool * watch_ways + way] */
static struct pollfd *watch_fds;    /* the same, for one poll per tick */
static int watch_pools, watch_ways;
static ap_generation_t watch_gen = -1;

static pid_t helper_pid;     /* 0: none running; reaped by the parent's
                              * loop (pc_stall_reaped) */
static apr_time_t helper_started;

/* Is slot 'i' of pool 'pl' one that reads way 'way' of its channels? */
static int reads_way(int i, int way, int live)
{
    return live < 2 || i % live == way % live;
}

/* A summary of the scoreboard of the children that read way 'way' of
 * 'pl': it changes whenever one of them takes a record, finishes a
 * request, parks a connection, a worker changes state, or a child is
 * replaced. */
static apr_uint64_t readers_life(const pc_pool_t *pl, int way, int live)
{
    apr_uint64_t life = 0;
    int i, t;

    for (i = 0; i < pl->slots; i++) {
        int slot = pl->first_slot + i;

        if (!reads_way(i, way, live)) {
            continue;
        }
        life = life * 31 + (apr_uint64_t)pc_slots_pid(slot);
        /* Records taken (pc_child.c), connections parked (pc_park.c). */
        life = life * 31 + ap_get_scoreboard_process(slot)->connections;
        life = life * 31 + ap_get_scoreboard_process(slot)->keep_alive;
        for (t = 0; t < pc_conf->thread_limit; t++) {
            worker_score *ws = ap_get_scoreboard_worker_from_indexes(slot, t);

            life = life * 31 + ws->access_count * 7 + ws->status;
        }
    }
    return life;
}

/* Stopped by a signal or a tracer ('T', 't' in /proc/<pid>/stat)? */
static int process_stopped(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "r")) == NULL) {
        return 0;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The state follows the command name's closing parenthesis. */
    p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

/* A reader of way 'way' of 'pl' that is alive. */
static int reader_alive(const pc_pool_t *pl, int i, int way, int live)
{
    pid_t pid = pc_slots_pid(pl->first_slot + i);

    return reads_way(i, way, live) && pid > 0
           && (kill(pid, 0) == 0 || errno == EPERM);
}

static int readers_running(const pc_pool_t *pl, int way, int live)
{
    int i, n = 0;

    for (i = 0; i < pl->slots; i++) {
        n += reader_alive(pl, i, way, live);
    }
    return n;
}

/* Can the readers not be merely busy: is none of them running (their
 * pool held off after crashes), is one of them stopped, or has one an
 * idle worker that does not take what waits? */
static int readers_not_busy(const pc_pool_t *pl, int way, int live)
{
    int i, t, running = 0;

    for (i = 0; i < pl->slots; i++) {
        int slot = pl->first_slot + i;

        if (!reader_alive(pl, i, way, live)) {
            continue;
        }
        running++;
        if (process_stopped(pc_slots_pid(slot))) {
            return 1;
        }
        for (t = 0; t < pc_conf->threads_per_child; t++) {
            if (ap_get_scoreboard_worker_from_indexes(slot, t)->status
                == SERVER_READY) {
                return 1;
            }
        }
    }
    return running == 0;
}

/* Records wait in a channel (one shut down by a holder of its sending
 * end is at end of file for good, not waiting): its poll result. */
static int has_records(short revents)
{
    return (revents & POLLIN)
           && !(revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* The helper: only the channel (as descriptor 3) and the standard ones
 * stay open; it runs as the pool's user and cannot be traced by it.  Its
 * log lines (a malformed record) go to standard error, which httpd made
 * the main error log: the main server's own log descriptor is closed
 * here, and a client's socket could take its number. */
static int helper_become(int chan, const pc_pool_t *pl, int *most)
{
    apr_os_file_t err = STDERR_FILENO;
    struct rlimit rl;

    if (chan != 3 && dup2(chan, 3) != 3) {
        return -1;
    }
    if (apr_os_file_put(&ap_server_conf->error_log, &err,
                        APR_FOPEN_WRITE | APR_FOPEN_APPEND, pc_pconf)
        != APR_SUCCESS) {
        return -1;
    }
    pc_close_from(4);
    /* Room for the descriptors it takes (while still allowed to raise
     * the limit); fewer if the system allows fewer. */
    *most = PC_HELPER_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < PC_HELPER_MAX + 16) {
            rl.rlim_cur = rl.rlim_max < PC_HELPER_MAX + 16
                          ? rl.rlim_max : PC_HELPER_MAX + 16;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur < PC_HELPER_MAX + 16) {
            *most = rl.rlim_cur > 32 ? (int)rl.rlim_cur - 16 : 16;
        }
    }
    if (setgroups(0, NULL) != 0 || setresgid(pl->gid, pl->gid, pl->gid) != 0
        || setresuid(pl->uid, pl->uid, pl->uid) != 0
        || prctl(PR_SET_DUMPABLE, 0) != 0
        || prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        return -1;
    }
    return 0;
}

/* Waits up to PC_HELPER_LINGER_MS for the clients to close, reading and
 * dropping what they send, so that a close does not reset a connection
 * whose 503 has not been read yet. */
static void helper_linger(int *fds, int n)
{
    struct pollfd p[PC_HELPER_MAX];
    apr_time_t end = pc_monotonic_now()
                     + apr_time_from_msec(PC_HELPER_LINGER_MS);
    int i, open = n;

    for (i = 0; i < n; i++) {
        p[i].fd = fds[i];
        p[i].events = POLLIN;
    }
    while (open > 0) {
        int left = (int)apr_time_as_msec(end - pc_monotonic_now());

        if (left <= 0 || poll(p, n, left) <= 0) {
            return;
        }
        for (i = 0; i < n; i++) {
            char sink[4096];

            ssize_t got;

            if (p[i].fd < 0 || !p[i].revents) {
                continue;
            }
            got = recv(p[i].fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (got == 0 || (got < 0 && errno != EAGAIN
                             && errno != EWOULDBLOCK && errno != EINTR)) {
                p[i].fd = -1;       /* poll skips it from now on */
                open--;
            }
        }
    }
}

static void helper_main(int chan, const pc_pool_t *pl)
{
    static int fds[PC_HELPER_MAX];
    char *buf = malloc(pc_handoff_bufsize());
    int n = 0, most;

    if (buf == NULL || helper_become(chan, pl, &most) != 0) {
        _exit(1);
    }
    /* What is left waits for the next helper. */
    while (n < most) {
        pc_passed_t passed;
        apr_status_t rv;

        memset(&passed, 0, sizeof(passed));
        rv = pc_handoff_receive(3, buf, &passed);
        if (APR_STATUS_IS_EAGAIN(rv) || rv == EPIPE) {
            break;
        }
        if (rv == APR_SUCCESS) {
            pc_handoff_refuse_passed(&passed);
            fds[n++] = passed.fd;
        }
    }
    helper_linger(fds, n);
    /* Descriptors closed by exit never wait for SO_LINGER. */
    _exit(0);
}

int pc_stall_reaped(pid_t pid)
{
    if (pid <= 0 || pid != helper_pid) {
        return 0;
    }
    helper_pid = 0;
    return 1;
}

/* Starts a helper for channel 'fd' of 'pl'; 1 if it runs. */
static int helper_start(int fd, const pc_pool_t *pl)
{
    pid_t pid = fork();

    if (pid == 0) {
        helper_main(fd, pl);      /* does not return */
    }
    if (pid < 0) {
        return 0;
    }
    helper_pid = pid;
    helper_started = pc_monotonic_now();
    return 1;
}

/* A helper that outlives PC_HELPER_LIFE is stuck on a descriptor. */
static void helper_watch(apr_time_t now)
{
    if (helper_pid > 0 && now - helper_started > PC_HELPER_LIFE) {
        kill(helper_pid, SIGKILL);
    }
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
    free(watch_fds);
    watches = calloc((size_t)pools * most, sizeof(*watches));
    watch_fds = calloc((size_t)pools * most, sizeof(*watch_fds));
    if (watches == NULL || watch_fds == NULL) {
        free(watches);
        free(watch_fds);
        watches = NULL;
        watch_fds = NULL;
        return 0;
    }
    watch_pools = pools;
    watch_ways = most;
    watch_gen = pc_retained->mpm->my_generation;
    return 1;
}

static void check_channel(int pool, int way, int live, apr_time_t now)
{
    watch_t *w = &watches[pool * watch_ways + way];
    int fd = watch_fds[pool * watch_ways + way].fd;
    const pc_pool_t *pl = pc_pools_get(pool);
    apr_uint64_t life;
    int down;

    if (!has_records(watch_fds[pool * watch_ways + way].revents)) {
        w->since = 0;
        w->stalled = 0;
        return;
    }
    life = readers_life(pl, way, live);
    if (w->since == 0 || life != w->life) {
        w->since = now;
        w->life = life;
        w->stalled = 0;
        return;
    }
    /* A pool the parent keeps down (held off after fast deaths, or
     * unable to start) with no reader left will not take its queue
     * before the hold-off ends: no reason to keep those clients
     * waiting. */
    down = pc_parent_pool_down(pool) && readers_running(pl, way, live) == 0;
    if ((!w->stalled && !down
         && now - w->since < apr_time_from_sec(pc_conf->queue_timeout))
        || helper_pid > 0 || !readers_not_busy(pl, way, live)
        || !helper_start(fd, pl)) {
        return;
    }
    if (!w->stalled && down) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     "PC0321: pool %s is kept down (PC0205, PC0206): "
                     "answering the connections waiting in its channel "
                     "with 503", pc_pools_label(pl));
    }
    else if (!w->stalled) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                     "PC0318: pool %s took no connection from its channel "
                     "for %d seconds (its children are stopped, or do not "
                     "take work although they have idle workers); "
                     "answering the connections waiting there with 503",
                     pc_pools_label(pl), pc_conf->queue_timeout);
    }
    w->stalled = 1;
}

void pc_stall_check(void)
{
    apr_time_t now = pc_monotonic_now();
    int i, w, ways, live;

    helper_watch(now);
    if (pc_conf->queue_timeout <= 0 || pc_conf->pools->nelts < 2
        || !watch_setup()) {
        return;
    }
    /* All channels in one poll (per 256): a poll each cost the parent of
     * a host with a thousand tenants ten thousand system calls a second. */
    for (i = 0; i < watch_pools; i++) {
        for (w = 0; w < watch_ways; w++) {
            struct pollfd *p = &watch_fds[i * watch_ways + w];

            p->fd = pc_handoff_parent_chan(i, w, &ways, &live);
            p->events = POLLIN | POLLRDHUP;
            p->revents = 0;
        }
    }
    if (pc_poll_now(watch_fds, watch_pools * watch_ways) < 0) {
        return;
    }
    for (i = 0; i < watch_pools; i++) {
        pc_handoff_parent_chan(i, 0, &ways, &live);
        for (w = 0; w < ways && w < watch_ways; w++) {
            if (watch_fds[i * watch_ways + w].fd >= 0) {
                check_channel(i, w, live, now);
            }
        }
    }
}
